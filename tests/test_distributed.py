"""torchrun launches of the training stages: 2 CPU processes, gloo backend, tiny configs.

Each stage runs through its normal entry point (``python -m torch.distributed.run -m pipeline.<stage>``);
the ranks must end with identical weights (gradients really were averaged) and rank 0 alone writes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_augment import make_tiny_processed
from test_pretrain import _write_params, make_interim, make_processed

from syndgan.errors import ConfigError
from syndgan.training import distributed
from syndgan.training.distributed import DistInfo

ROOT = Path(__file__).resolve().parent.parent


def test_rank_arithmetic_and_single_process_no_ops():
    info = DistInfo(rank=1, world_size=2)
    assert info.local_batch(8) == 4 and not info.main and info.active
    assert info.shard(list(range(8))) == [1, 3, 5, 7]
    with pytest.raises(ConfigError, match="batch_size 5 does not split over 2 processes"):
        info.local_batch(5)
    # outside torchrun: rank 0 of 1, and the collective helpers leave everything as it is
    assert distributed.current() == DistInfo() and distributed.current().main
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.full((3,), 2.0)
    distributed.average_gradients([p])
    assert p.grad.tolist() == [2.0, 2.0, 2.0]
    assert distributed.mean_over_ranks({"a": 1.5}) == {"a": 1.5}
    assert distributed.broadcast_object("x") == "x"


def _torchrun(module: str, cwd: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",  # the gloo path, also on a machine with GPUs
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*cmd, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=420)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _digests(log: str, what: str) -> dict[int, str]:
    found = dict(re.findall(rf"rank (\d): final {what} weights ([0-9a-f]+)", log))
    return {int(k): v for k, v in found.items()}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    make_processed(root / "data" / "processed")
    make_interim(root / "data" / "interim")
    return root


def _kill_pretrain_after(step: int, project: Path, monkeypatch) -> None:
    """The pretrain stage in this process, stopped after ``step`` with its resume state written, as a kill would."""
    from pipeline import pretrain as stage
    from pipeline.config import load_params

    train = stage.train_pretrain

    def killed(*args, **kw):
        train(*args, **kw, max_steps=step)
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(stage, "train_pretrain", killed)
        m.chdir(project)
        with pytest.raises(RuntimeError, match="killed"):
            stage.run(load_params(project / "params.yaml"))
    assert (project / ".syndgan" / "resume" / "pretrain" / "last.pt").is_file()


def test_pretrain_then_train_synth_under_torchrun(project, monkeypatch):
    params = yaml.safe_load(_write_params(project, {"steps": 3, "fid_samples": 4}).read_text())
    params["pretrain"]["threads"] = 1
    params["train_synth"] = {
        "n_blocks": 2, "enc_channel_base": 128, "enc_channel_max": 16, "sft_hidden": 4, "batch_size": 4,
        "steps": 2, "checkpoint_every": 1, "sample_every": 1, "perceptual": "effnet", "device": "cpu",
        "threads": 1, "ablations": [],
    }  # fmt: skip
    (project / "params.yaml").write_text(yaml.safe_dump(params))

    log = _torchrun("pipeline.pretrain", project)
    d = _digests(log, "G")
    assert set(d) == {0, 1} and d[0] == d[1], log[-3000:]
    assert "[rank 1]" in log  # both ranks ran and said who they are
    metrics = json.loads((project / "metrics" / "pretrain.json").read_text())
    assert metrics["steps"] == 3 and metrics["images"] == 12 and metrics["fid_effnet"] > 0
    losses = (project / "plots" / "pretrain" / "losses.csv").read_text().splitlines()
    assert len(losses) == 2 and losses[1].startswith("3,")  # the final row, written once (by rank 0)
    assert (project / "models" / "pretrain" / "generator.pt").is_file()
    assert sorted(p.name for p in (project / "models" / "pretrain" / "samples").iterdir()) == [
        f"step_{i:07d}.png" for i in (1, 2, 3)
    ]

    assert not (project / ".syndgan" / "resume" / "pretrain").exists()  # finished: nothing left to resume

    # a run killed after step 3 of 4 (here in one process: the process count may differ) resumes on every rank
    params["pretrain"]["steps"] = 4
    (project / "params.yaml").write_text(yaml.safe_dump(params))
    _kill_pretrain_after(3, project, monkeypatch)
    log = _torchrun("pipeline.pretrain", project)
    assert log.count("at step 3") == 2 and "resuming from" in log  # both ranks resumed
    d = _digests(log, "G")
    assert set(d) == {0, 1} and d[0] == d[1], log[-3000:]
    assert json.loads((project / "metrics" / "pretrain.json").read_text())["steps"] == 4

    log = _torchrun("pipeline.train_synth", project)
    d = _digests(log, "synthesis network")
    assert set(d) == {0, 1} and d[0] == d[1], log[-3000:]
    m = json.loads((project / "metrics" / "train_synth.json").read_text())
    assert m["steps"] == 2 and m["recon_images_defect"] == 2 and m["recon_perceptual_effnet_defect"] > 0
    assert (project / "models" / "train_synth" / "synthesizer.pt").is_file()
    assert (project / "plots" / "train_synth" / "losses.csv").read_text().splitlines()[-1].startswith("2,")


def test_batch_that_does_not_split_is_a_one_line_error(project, tmp_path):
    params = yaml.safe_load(_write_params(tmp_path, {"batch_size": 3, "out": "models/odd"}).read_text())
    params["rasterize"]["out"] = str(project / "data" / "processed")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(
        [*cmd, "-m", "pipeline.pretrain"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0
    assert "pretrain: error: pretrain.batch_size 3 does not split over 2 processes" in proc.stderr
    assert not (tmp_path / "models" / "odd").exists()


def test_classify_under_torchrun(tmp_path):
    from pipeline import augment

    tiny = make_tiny_processed(tmp_path / "tiny", resolution=32)
    classes = {c["name"]: c["color"] for c in json.loads((tiny / "dataset.json").read_text())["classes"]}
    params = {
        "ingest": {"classes": classes, "out": str(tiny.parent / "interim")},
        "rasterize": {"out": str(tiny)},
        "augment": {"out": "augmented"},
        "classify": {
            "methods": ["cutmix"],
            "seeds": [0],
            "train": {
                "resolution": 32,
                "batch_size": 4,
                "steps": 4,
                "epochs": None,
                "eval_every": 2,
                "eval_from_epoch": 0,
                "threads": 1,
            },  # fmt: skip
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert augment.main(["--method", "cutmix"]) == 0
    finally:
        os.chdir(cwd)
    log = _torchrun("pipeline.classify", tmp_path, "--method", "cutmix", "--seed", "0")
    d = _digests(log, "classifier")
    assert set(d) == {0, 1} and d[0] == d[1], log[-3000:]
    run = json.loads((tmp_path / "reports" / "classify" / "cutmix-s0" / "metrics.json").read_text())
    assert run["doses"]["0"]["steps_run"] == 4 and 0 <= run["doses"]["0"]["total_accuracy"] <= 1
    hist = (tmp_path / "reports" / "classify" / "cutmix-s0" / "dose-0" / "history.csv").read_text().splitlines()
    assert len(hist) == 1 + 2  # validations at steps 2 and 4, by rank 0
