"""Pretraining: data contract readers, the training loop (determinism, resume) and the DVC stage module.

The processed/interim fixtures are written here, following the data contract, with tiny images.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from pipeline.config import parse_params
from syndgan.data.datasets import PatchDataset, ProcessedImages
from syndgan.data.processed import resize_labels, train_pool_ids
from syndgan.errors import ConfigError, DataError
from syndgan.models.generators import load_generator
from syndgan.models.snapshots import load_checkpoint
from syndgan.sources import source_digest
from syndgan.training.pretrain import train_pretrain
from syndgan.training.settings import PretrainSettings

CLASSES = [{"name": "bump", "id": 1, "color": [255, 64, 64]}, {"name": "dust", "id": 2, "color": [64, 128, 255]}]
RES = 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny convolutions: one thread is fastest, and 2 threads on 2 shared cores were ~10x slower here."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _texture(rng: np.random.Generator, h: int, w: int, channels: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    base = 100 + 60 * np.sin(xx / rng.uniform(2, 6)) + 40 * (yy > rng.uniform(0, h))
    img = np.clip(base[..., None] + rng.normal(0, 10, (h, w, channels)), 0, 255).astype(np.uint8)
    return img[..., 0] if channels == 1 else img


def make_processed(root, n: int = 12, res: int = RES, channels: int = 1):
    """A ``data/processed`` folder per the contract: images/colormaps/labelmaps, index.parquet, dataset.json."""
    rng = np.random.default_rng(0)
    for sub in ("images", "colormaps", "labelmaps"):
        (root / sub).mkdir(parents=True)
    rows = []
    for i in range(n):
        label = ["normal", "normal", "bump", "dust"][i % 4]
        stem = f"demo__part{i:03d}"
        Image.fromarray(_texture(rng, res, res, channels)).save(root / "images" / f"{stem}.png")
        lm = np.zeros((res, res), np.uint8)
        if label != "normal":
            lm[4:10, 5:12] = 1 if label == "bump" else 2
        Image.fromarray(lm).save(root / "labelmaps" / f"{stem}.png")
        cm = np.zeros((res, res, 3), np.uint8)
        for c in CLASSES:
            cm[lm == c["id"]] = c["color"]
        Image.fromarray(cm).save(root / "colormaps" / f"{stem}.png")
        rows.append(
            {
                "id": f"demo/part{i:03d}",
                "label": label,
                "labels": "" if label == "normal" else label,
                "split": "test" if i >= n - 2 else "train",
                "group": f"demo/part{i:03d}",
                "image": f"images/{stem}.png",
                "colormap": f"colormaps/{stem}.png",
                "labelmap": f"labelmaps/{stem}.png",
            }
        )
    pd.DataFrame(rows).to_parquet(root / "index.parquet", index=False)
    info = {"resolution": res, "channels": channels, "classes": CLASSES, "counts": {}}
    (root / "dataset.json").write_text(json.dumps(info))
    return root


def make_interim(root, channels: int = 1):
    """``data/interim`` manifest + annotations over native images of different sizes (one smaller than a patch)."""
    rng = np.random.default_rng(1)
    (root / "raw").mkdir(parents=True)
    sizes = [(90, 70), (60, 110), (20, 50), (80, 80)]  # (width, height)
    labels = ["bump", "normal", "dust", "normal"]
    man, ann = [], []
    for i, ((w, h), label) in enumerate(zip(sizes, labels, strict=True)):
        path = root / "raw" / f"img{i}.jpg"
        Image.fromarray(_texture(rng, h, w, channels)).save(path)
        man.append(
            {"id": f"src/img{i}", "source": "src", "path": str(path), "sha256": f"{i:064d}", "width": w, "height": h,
             "mode": "L" if channels == 1 else "RGB", "label": label, "labels": "" if label == "normal" else label,
             "split": "train", "group": f"img{i}"}
        )  # fmt: skip
        if label != "normal":
            x0, y0 = w - 8, h - 6
            ann.append(
                {"image_id": f"src/img{i}", "label": label, "shape": "polygon", "points": "[]", "mask_path": "",
                 "mask_threshold": 127, "x0": x0, "y0": y0, "x1": x0 + 4, "y1": y0 + 3, "area": 12}
            )  # fmt: skip
    pd.DataFrame(man).to_parquet(root / "manifest.parquet", index=False)
    pd.DataFrame(ann).to_parquet(root / "annotations.parquet", index=False)
    return root


def tiny_settings(**kw) -> PretrainSettings:
    base = dict(
        resolution=RES, channels=1, batch_size=4, steps=4, z_dim=16, w_dim=16, g_channel_base=128, g_channel_max=32,
        d_channel_base=128, d_channel_max=16, d_proj_channels=4, fid_samples=0, checkpoint_every=2, sample_every=0,
        log_every=1, progress=False, device="cpu",
    )  # fmt: skip
    base.update(kw)
    return PretrainSettings(**base)


def train(settings, dataset, out, **kw):
    """``train_pretrain`` keeping its resume state at ``resume_of(out)``, beside the outputs as the stage does."""
    return train_pretrain(settings, dataset, out, resume_path=resume_of(out), **kw)


def resume_of(out):
    return out.parent / "resume" / f"{out.name}.pt"


@pytest.fixture(scope="module")
def processed(tmp_path_factory):
    return make_processed(tmp_path_factory.mktemp("processed"))


# --------------------------------------------------------------------------- datasets


def test_processed_dataset_follows_the_contract(processed):
    ds = ProcessedImages(processed, split="train")
    assert len(ds) == 10 and ds.channels == 1
    item = ds[2]
    assert item["image"].shape == (1, RES, RES) and item["label"] == 1 and item["id"] == "demo/part002"
    assert -1 <= item["image"].min() and item["image"].max() <= 1 and item["image"].std() > 0.05
    small = ProcessedImages(processed, split=["train", "test"], resolution=16, with_maps=True)
    it = small[3]
    assert len(small) == 12 and it["image"].shape == (1, 16, 16) and it["colormap"].shape == (3, 16, 16)
    assert it["labelmap"].dtype == torch.int64 and set(it["labelmap"].unique().tolist()) == {0, 2}


def test_resized_label_maps_keep_tiny_defects_as_inference_does(tmp_path):
    """Training label maps shrink by the coverage rule ``Synthesizer`` uses, so a 1 px defect survives."""
    root = make_processed(tmp_path / "p", n=4)
    stem = "demo__part003"  # a dust image: replace its defect by one pixel off the 4 px grid
    lm = np.zeros((RES, RES), np.uint8)
    lm[13, 22] = 2
    Image.fromarray(lm).save(root / "labelmaps" / f"{stem}.png")
    nearest = np.asarray(Image.fromarray(lm).resize((8, 8), Image.Resampling.NEAREST))
    assert not nearest.any()  # what training did before: the defect vanished
    it = ProcessedImages(root, split=None, resolution=8, with_maps=True)[3]
    assert torch.equal(it["labelmap"], torch.from_numpy(resize_labels(lm, 8).astype(np.int64)))
    assert it["labelmap"].sum() == 2 and it["labelmap"][3, 5] == 2
    colour = (torch.tensor(CLASSES[1]["color"]) / 127.5 - 1.0).view(3, 1)
    assert torch.allclose(it["colormap"][:, it["labelmap"] == 2], colour)
    assert torch.all(it["colormap"][:, it["labelmap"] == 0] == -1)


def test_k_shot_keeps_every_normal_and_k_defects_per_class(tmp_path):
    processed = make_processed(tmp_path / "p")
    assert train_pool_ids(processed) is None  # dataset.json without k_shot: every train image
    info = json.loads((processed / "dataset.json").read_text())
    (processed / "dataset.json").write_text(json.dumps({**info, "k_shot": 1, "k_shot_seed": 0}))
    keep = train_pool_ids(processed)
    ds = ProcessedImages(processed, split="train", keep_ids=keep)
    labels = sorted(ds.index["label"])
    assert labels == ["bump", "dust"] + ["normal"] * 6  # train holds 6 normal, 2 bump, 2 dust
    assert keep == train_pool_ids(processed) and set(ds.index["split"]) == {"train"}
    # the pool rasterize recorded reaches the training stages: pretrain's dataset is the k-shot pool
    from pipeline.config import parse_params
    from pipeline.pretrain import build_dataset

    params = parse_params({"rasterize": {"out": str(processed)}})
    assert sorted(build_dataset(params, RES, 1, CLASSES).index["id"]) == sorted(keep)


def test_processed_dataset_errors_name_the_file(tmp_path, processed):
    with pytest.raises(DataError, match="dataset.json: not found"):
        ProcessedImages(tmp_path)
    bad = make_processed(tmp_path / "bad", n=4)
    df = pd.read_parquet(bad / "index.parquet")
    df.loc[0, "label"] = "scratch"
    df.to_parquet(bad / "index.parquet", index=False)
    with pytest.raises(DataError, match="index.parquet: label 'scratch' is not a class"):
        ProcessedImages(bad)
    (bad / "images" / "demo__part001.png").unlink()
    df.loc[0, "label"] = "normal"
    df.to_parquet(bad / "index.parquet", index=False)
    with pytest.raises(DataError, match="demo__part001.png: image file not found"):
        ProcessedImages(bad)[1]


def test_patch_dataset_windows_native_resolution(tmp_path):
    interim = make_interim(tmp_path)
    ds = PatchDataset(interim / "manifest.parquet", interim / "annotations.parquet", CLASSES, patch_size=32,
                      resolution=16, channels=1, defect_patch_prob=1.0)  # fmt: skip
    torch.manual_seed(0)
    for _ in range(5):
        item = ds[0]  # 90x70 image, bump bbox at (82..86, 64..67): always inside a defect-centred window
        x0, y0, size = item["window"].tolist()
        assert item["image"].shape == (1, 16, 16) and size == 32 and item["label"] == 1
        assert 0 <= x0 <= 90 - 32 and 0 <= y0 <= 70 - 32
        assert x0 < 86 and x0 + size > 82 and y0 < 67 and y0 + size > 64
    small = ds[2]  # 20x50 < patch: scaled up to fit, window reported in native pixels
    assert small["image"].shape == (1, 16, 16) and small["label"] == 2 and small["window"][2] == 20
    plain = PatchDataset(interim / "manifest.parquet", interim / "annotations.parquet", CLASSES, patch_size=24,
                         channels=3, defect_patch_prob=0.0)  # fmt: skip
    windows = {tuple(plain[1]["window"].tolist()) for _ in range(6)}
    assert plain[1]["image"].shape == (3, 24, 24) and plain[1]["label"] == 0 and len(windows) > 1


# --------------------------------------------------------------------------- training


def _state(path):
    return load_checkpoint(path)


def _assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_train_pretrain_writes_everything(processed, tmp_path, caplog):
    ds = ProcessedImages(processed)
    s = tiny_settings(steps=4, fid_samples=4, fid_every=2, fid_resize=32, sample_every=2)
    summary = train_pretrain(s, ds, tmp_path / "out", log_dir=tmp_path / "plots")
    assert summary["finished"] and summary["steps"] == 4 and summary["images_per_s"] > 0
    assert summary["fid_effnet_start"] > 0 and summary["fid_effnet"] > 0
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["step_0000002.png", "step_0000004.png"]
    losses = pd.read_csv(tmp_path / "plots" / "losses.csv")
    assert losses["step"].tolist() == [1, 2, 3, 4] and losses["loss_d"].notna().all()
    assert pd.read_csv(tmp_path / "plots" / "fid.csv")["step"].tolist() == [0, 2, 4]
    G = load_generator(out / "generator.pt")
    assert (G.img_resolution, G.img_channels) == (RES, 1) and not G.training
    assert G(torch.randn(2, 16)).shape == (2, 1, RES, RES)
    assert json.loads((out / "summary.json").read_text())["fid_effnet"] == pytest.approx(summary["fid_effnet"])


def test_same_seed_same_parameters_on_cpu(processed, tmp_path):
    ds = ProcessedImages(processed)
    for name in ("a", "b"):
        train(tiny_settings(steps=2), ds, tmp_path / name)
    a, b = _state(resume_of(tmp_path / "a")), _state(resume_of(tmp_path / "b"))
    _assert_same(a["G"], b["G"])
    _assert_same(a["D"], b["D"])
    _assert_same(a["D"], _state(tmp_path / "a" / "discriminator.pt")["D"])  # discriminator.pt: the final D
    c_dir = tmp_path / "c"
    train(tiny_settings(steps=2, seed=1), ds, c_dir)
    c = _state(resume_of(c_dir))
    assert any(not torch.equal(a["G"][k], c["G"][k]) for k in a["G"])  # another seed, another run


@pytest.mark.parametrize("generator", ["fastgan", "stylegan2"])
def test_resume_after_interruption_matches_uninterrupted_run(processed, tmp_path, generator):
    ds = ProcessedImages(processed)
    s = tiny_settings(generator=generator, steps=4, checkpoint_every=2)
    train(s, ds, tmp_path / "straight")
    partial = train(s, ds, tmp_path / "resumed", max_steps=2)  # "killed" right after step 2
    assert partial == {"step": 2, "finished": False} and not (tmp_path / "resumed" / "generator.pt").exists()
    shutil.rmtree(tmp_path / "resumed")  # DVC deletes a stage's outputs before a rerun: the state is elsewhere
    train(s, ds, tmp_path / "resumed")
    a, b = _state(resume_of(tmp_path / "straight")), _state(resume_of(tmp_path / "resumed"))
    assert a["step"] == b["step"] == 4
    for key in ("G", "G_ema", "D"):
        _assert_same(a[key], b[key])
    assert a["opt_g"]["state"][0]["exp_avg"].equal(b["opt_g"]["state"][0]["exp_avg"])
    straight = (tmp_path / "straight" / "losses.csv").read_text().splitlines()
    resumed = (tmp_path / "resumed" / "losses.csv").read_text().splitlines()
    strip = [line.rsplit(",", 1)[0] for line in straight]  # all columns but the timing
    assert strip == [line.rsplit(",", 1)[0] for line in resumed] and len(straight) == 5


def test_stopped_run_keeps_the_previous_logs_and_the_resumed_one_logs_each_step_once(processed, tmp_path):
    """A kill -9 used to truncate the committed curves (issue 29): they change only when a run completes."""
    ds = ProcessedImages(processed)
    plots = tmp_path / "plots"
    plots.mkdir()
    previous = {"losses.csv": b"step,loss_d\n1,0.5\n2,0.4\n", "fid.csv": b"step,fid_effnet\n0,99\n8,42\n"}
    for name, data in previous.items():
        (plots / name).write_bytes(data)
    s = tiny_settings(steps=4, checkpoint_every=2, fid_samples=4, fid_every=2, fid_resize=32)
    assert train(s, ds, tmp_path / "out", log_dir=plots, max_steps=3) == {"step": 3, "finished": False}
    assert {name: (plots / name).read_bytes() for name in previous} == previous
    live = (plots / ".losses.csv.partial").read_text().splitlines()  # the run in progress, readable live
    assert [row.split(",")[0] for row in live] == ["step", "1", "2", "3"]
    train(s, ds, tmp_path / "out", log_dir=plots)
    assert pd.read_csv(plots / "losses.csv")["step"].tolist() == [1, 2, 3, 4]
    assert pd.read_csv(plots / "fid.csv")["step"].tolist() == [0, 2, 4]
    assert sorted(p.name for p in plots.iterdir()) == ["fid.csv", "losses.csv"]  # no live file left


def test_changed_settings_do_not_resume(processed, tmp_path, caplog):
    ds = ProcessedImages(processed)
    run = tmp_path / "run"
    train(tiny_settings(steps=2), ds, run, data_digest="a")
    with caplog.at_level(logging.WARNING):
        train(tiny_settings(steps=2, lr_g=1e-3), ds, run, data_digest="a")
    assert "settings changed: lr_g" in caplog.text
    # a checkpoint written by other model/training code is not resumed either (dvc repro after a code edit)
    ck = torch.load(resume_of(run), weights_only=True)
    assert ck["code"] == source_digest("syndgan.training.pretrain") and len(ck["code"]) == 64
    ck["code"] = "0" * 64
    torch.save(ck, resume_of(run))
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train(tiny_settings(steps=2, lr_g=1e-3), ds, run, data_digest="a")
    assert "settings changed: model/training code" in caplog.text and "resuming from" not in caplog.text
    # nor one trained on other data (the stage passes a digest of its input tables)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        train(tiny_settings(steps=2, lr_g=1e-3), ds, run, data_digest="b")
    assert "settings changed: training data" in caplog.text and "resuming from" not in caplog.text
    train(tiny_settings(steps=2, lr_g=1e-3), ds, tmp_path / "fresh")
    _assert_same(_state(resume_of(run))["G"], _state(resume_of(tmp_path / "fresh"))["G"])


def test_settings_and_dataset_validation(processed, tmp_path):
    ds = ProcessedImages(processed)
    with pytest.raises(ConfigError, match="resolution"):
        train_pretrain(tiny_settings(resolution=48), ds, tmp_path)
    with pytest.raises(DataError, match=r"images are \(1, 32, 32\), settings need \(3, 32, 32\)"):
        train_pretrain(tiny_settings(channels=3), ds, tmp_path)
    with pytest.raises(ConfigError, match="aux_weight"):
        train_pretrain(tiny_settings(aux_weight=1.0), ds, tmp_path)


def test_aux_classifier_and_single_scale_train(processed, tmp_path):
    ds = ProcessedImages(processed)
    s = tiny_settings(steps=2, n_classes=3, aux_weight=1.0, d_scales=[3], loss="logistic", generator="stylegan2")
    assert train(s, ds, tmp_path / "aux")["finished"]
    d_state = _state(resume_of(tmp_path / "aux"))["D"]
    assert any("classifier" in k for k in d_state) and not any(k.startswith("heads.0.") for k in d_state)


# --------------------------------------------------------------------------- DVC stage module


def _write_params(tmp_path, pretrain: dict):
    from pipeline.config import PretrainConfig  # noqa: F401  (section must exist)

    params = {
        "rasterize": {"resolution": RES, "out": "data/processed"},
        "ingest": {"classes": {c["name"]: c["color"] for c in CLASSES}, "out": "data/interim"},
        "pretrain": {
            "resolution": RES, "steps": 2, "batch_size": 4, "z_dim": 16, "w_dim": 16, "g_channel_base": 128,
            "g_channel_max": 32, "d_channel_base": 128, "d_channel_max": 16, "d_proj_channels": 4,
            "fid_samples": 4, "fid_every": 0, "sample_every": 1, "checkpoint_every": 1, "device": "cpu", **pretrain,
        },
    }  # fmt: skip
    import yaml

    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_stage_main_resize_and_patch_modes(tmp_path, monkeypatch, caplog):
    from pipeline import pretrain as stage

    make_processed(tmp_path / "data" / "processed")
    make_interim(tmp_path / "data" / "interim")
    monkeypatch.chdir(tmp_path)
    params = str(_write_params(tmp_path, {"log_every": 1}))

    def killed(*args, **kw):  # stops after step 1 with the resume state written, as a kill would
        train_pretrain(*args, **kw, max_steps=1)
        raise RuntimeError("killed")

    plots = tmp_path / "plots" / "pretrain"
    plots.mkdir(parents=True)
    previous = {"losses.csv": b"step,loss_g\n7,0.5\n", "fid.csv": b"step,fid_effnet\n7,42\n"}  # last run's
    for name, data in previous.items():
        (plots / name).write_bytes(data)
    monkeypatch.setattr(stage, "train_pretrain", killed)
    with pytest.raises(RuntimeError, match="killed"):
        stage.main(["--params", params])
    resume = tmp_path / ".syndgan" / "resume" / "pretrain" / "last.pt"
    assert load_checkpoint(resume)["step"] == 1  # outside models/pretrain: no DVC output is persistent
    assert not (tmp_path / "models" / "pretrain" / "checkpoints").exists()
    assert {name: (plots / name).read_bytes() for name in previous} == previous  # the kill left them intact
    monkeypatch.setattr(stage, "train_pretrain", train_pretrain)
    with caplog.at_level(logging.INFO):
        assert stage.main(["--params", params]) == 0
    assert "at step 1" in caplog.text and "resuming from" in caplog.text
    assert ".losses.csv.partial, left by an interrupted run" in caplog.text  # the killed run's live log
    assert pd.read_csv(plots / "losses.csv")["step"].tolist() == [1, 2]
    assert sorted(p.name for p in plots.iterdir()) == ["fid.csv", "losses.csv"]
    assert not resume.parent.exists()  # finished: nothing left to resume
    metrics = json.loads((tmp_path / "metrics" / "pretrain.json").read_text())
    assert metrics["steps"] == 2 and metrics["train_images"] == 10 and metrics["fid_effnet"] > 0
    assert (tmp_path / "plots" / "pretrain" / "losses.csv").exists()
    assert (tmp_path / "models" / "pretrain" / "generator.pt").exists()
    # discriminator.pt: D with the spec that rebuilds it (what train_synth and the studio read)
    from syndgan.models.snapshots import load_discriminator

    D = load_discriminator(tmp_path / "models" / "pretrain" / "discriminator.pt")
    assert (D.img_resolution, D.img_channels) == (RES, 1)

    params = _write_params(tmp_path, {"data_mode": "patch", "patch_size": 40, "out": "models/patch"})
    assert stage.main(["--params", str(params)]) == 0
    assert json.loads((tmp_path / "metrics" / "pretrain.json").read_text())["data_mode"] == "patch"
    assert load_generator(tmp_path / "models" / "patch" / "generator.pt").img_channels == 1

    bad = _write_params(tmp_path, {"betas": [0.9]})
    assert stage.main(["--params", str(bad)]) == 1


def test_pretrain_params_validation():
    with pytest.raises(ConfigError, match="pretrain.betas"):
        parse_params({"pretrain": {"betas": [0.9]}})
    with pytest.raises(ConfigError, match="pretrain.resolution"):
        parse_params({"pretrain": {"resolution": 100}})
    with pytest.raises(ConfigError, match="pretrain.d_scales"):
        parse_params({"pretrain": {"d_scales": [5]}})
    with pytest.raises(ConfigError, match="pretrain.lr_gg: unknown key"):
        parse_params({"pretrain": {"lr_gg": 1.0}})
    p = parse_params({"pretrain": {"generator": "stylegan2", "data_mode": "patch"}})
    assert p.pretrain.generator == "stylegan2" and dataclasses.is_dataclass(p.pretrain)


MT_ROOT = __import__("pathlib").Path("/work/shared/datasets/magnetic-tile")


@pytest.mark.skipif(not (MT_ROOT / "MT_Blowhole").is_dir(), reason="Magnetic Tile not present")
def test_patch_dataset_on_magnetic_tile_native_grayscale(tmp_path):
    """Real grayscale images of varying size: windows stay inside, defect-centred ones hit the mask."""
    rows, ann = [], []
    for cls in ("Blowhole", "Free"):
        for jpg in sorted((MT_ROOT / f"MT_{cls}" / "Imgs").glob("*.jpg"))[:3]:
            with Image.open(jpg) as im:
                w, h = im.size
            label = "normal" if cls == "Free" else "bump"
            rows.append({"id": f"mt/{jpg.stem}", "path": str(jpg), "width": w, "height": h, "label": label,
                         "split": "train"})  # fmt: skip
            if label != "normal":
                mask = np.asarray(Image.open(jpg.with_suffix(".png")).convert("L")) > 127
                ys, xs = np.nonzero(mask)
                ann.append({"image_id": f"mt/{jpg.stem}", "label": label, "x0": xs.min(), "y0": ys.min(),
                            "x1": xs.max() + 1, "y1": ys.max() + 1})  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet", index=False)
    pd.DataFrame(ann).to_parquet(tmp_path / "annotations.parquet", index=False)
    ds = PatchDataset(tmp_path / "manifest.parquet", tmp_path / "annotations.parquet", CLASSES, patch_size=128,
                      resolution=64, channels=1, defect_patch_prob=1.0)  # fmt: skip
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        x0, y0, size = item["window"].tolist()
        row = rows[i]
        assert item["image"].shape == (1, 64, 64) and torch.isfinite(item["image"]).all()
        assert 0 <= x0 and x0 + size <= row["width"] + 1 and 0 <= y0 and y0 + size <= row["height"] + 1
        if row["label"] != "normal":
            box = next(a for a in ann if a["image_id"] == row["id"])
            assert item["label"] == 1
            assert x0 < box["x1"] and x0 + size > box["x0"] and y0 < box["y1"] and y0 + size > box["y0"]
