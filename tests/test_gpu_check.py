"""The GPU check's code on CPU: its configs validate, a dry run of every stage on demo data, and the CUDA-only
branch the trainings take there (bf16 autocast) forced on CPU, so the first GPU run does not meet it untested."""

import copy
import json
import math

import pytest
import torch
import yaml
from synth_helpers import CLASSES, TinyDataset, one_thread, tiny_settings, write_pretrained  # noqa: F401
from test_scarcity import TINY

from pipeline.experiments import gpu_check
from syndgan.errors import DataError


def test_the_gpu_configs_validate_as_overlays(tmp_path):
    merged = gpu_check.check_params([gpu_check.ROOT / f for f in gpu_check.OVERLAYS], tmp_path)
    assert merged["pretrain"]["resolution"] == merged["rasterize"]["resolution"] == 256
    assert merged["rasterize"]["k_shot"] == 10 and merged["classify"]["methods"] == ["none", "copy_paste", "syndgan"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")
def test_without_a_gpu_the_check_says_so_in_one_line(tmp_path):
    with pytest.raises(DataError, match="no CUDA device here"):
        gpu_check.run_check([], tmp_path / "w", tmp_path / "out")


@pytest.mark.slow
def test_a_dry_run_times_every_stage_and_reports_the_classifiers(tmp_path):
    tiny = copy.deepcopy(TINY)
    tiny["classify"].update(methods=["none", "syndgan"], doses=["all"])
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text(yaml.safe_dump(tiny))
    record = gpu_check.run_check([overlay], tmp_path / "work", tmp_path / "out", require_gpu=False)
    names = [s["stage"] for s in record["stages"]]
    assert names == ["demo", "ingest", "rasterize", "pretrain", "train_synth", "augment@none", "augment@syndgan",
                     "classify@none-0", "classify@syndgan-0", "classify_aggregate"]  # fmt: skip
    ips = {s["stage"]: s["images_per_s"] for s in record["stages"]}
    assert all(ips[s] > 0 for s in ("pretrain", "train_synth", "augment@syndgan", "classify@none-0")), ips
    assert set(record["classify"]) == {"none", "syndgan"} and record["device"] == "cpu"
    assert json.loads((tmp_path / "out" / "gpu_check.json").read_text()) == record
    assert (tmp_path / "out" / "classify.md").is_file()


def test_bf16_autocast_trains_on_cpu_as_it_would_on_a_gpu(tmp_path, monkeypatch, one_thread):  # noqa: F811
    """``amp_dtype`` gives bf16 only on CUDA; forced here, pretrain and train_synth run their autocast branch."""
    from syndgan.training import loop
    from syndgan.training.pretrain import train_pretrain
    from syndgan.training.settings import PretrainSettings
    from syndgan.training.synth import train_synth

    used = []

    def forced(device, enabled=True):
        used.append(enabled)
        return torch.bfloat16 if enabled else None

    monkeypatch.setattr(loop, "amp_dtype", forced)
    gen, disc = write_pretrained(tmp_path / "pre")
    data = TinyDataset()
    summary = train_synth(tiny_settings(amp=True, steps=2), data, tmp_path / "synth", generator_checkpoint=gen,
                          discriminator_checkpoint=disc, classes=CLASSES, eval_dataset=data)  # fmt: skip
    assert summary["finished"] and math.isfinite(summary["recon_l1_defect_region"])

    class Images:  # what pretraining reads: images in [-1, 1] with their labels
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"image": data[i]["image"], "label": 0}

    s = PretrainSettings(resolution=32, channels=3, batch_size=2, steps=2, z_dim=16, w_dim=16, g_channel_base=128,
                         g_channel_max=16, d_channel_base=128, d_channel_max=16, d_proj_channels=4, fid_samples=0,
                         sample_every=0, checkpoint_every=0, log_every=1, progress=False, device="cpu", amp=True)  # fmt: skip
    out = train_pretrain(s, Images(), tmp_path / "pretrain", log_dir=tmp_path / "plots")
    assert out["finished"] and used == [True, True]
    losses = (tmp_path / "plots" / "losses.csv").read_text().splitlines()
    assert len(losses) == 3 and "nan" not in "".join(losses[1:])
