import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image
from scipy import ndimage

from pipeline.rasterize import rasterize_dataset
from syndgan.augment import (
    METHODS,
    AugmentMethod,
    PlacementSettings,
    available_methods,
    check_provenance,
    compute_targets,
    create_method,
    generate_augmented,
    register_method,
    targets_table,
)
from syndgan.augment.copy_paste import CopyPaste
from syndgan.augment.cutmix import CutMix
from syndgan.augment.foreground import foreground_mask
from syndgan.augment.placement import DefectSource, Transform, compose_labelmap, place_defect, warp
from syndgan.data.demo import DemoSettings, generate_demo
from syndgan.data.processed import ProcessedDataset, select_k_shot, train_pool
from syndgan.errors import ConfigError, DataError

COLORS = {"bump": [255, 64, 64], "chipping": [64, 200, 64], "dust": [64, 128, 255]}


# --------------------------------------------------------------------------- a tiny processed dataset


def make_tiny_processed(
    root: Path, classes=("bump", "chipping", "dust"), resolution: int = 32, k_shot: int | None = None
) -> Path:
    """Demo parts (4 illuminations each) through a hand-made manifest and the real rasterize stage.

    Per class 4 parts: 2 train, 1 val, 1 test; 4 normal parts likewise. Parts whose defect class is not in
    ``classes`` are left out. Returns the processed folder.
    """
    raw = root / "raw"
    generate_demo(raw, DemoSettings(seed=1, parts=20, resolution=64, defect_fraction=0.6))
    parts: dict[str, list[str]] = {}
    for j in sorted(raw.glob("*_bright.json")):
        doc = json.loads(j.read_text())
        label = doc["shapes"][0]["label"] if doc["shapes"] else "normal"
        parts.setdefault(label, []).append(j.name.split("_")[0])
    split_of = {}
    for ps in parts.values():
        for i, p in enumerate(ps[:4]):
            split_of[p] = ("train", "train", "val", "test")[i]
    man, ann = [], []
    for j in sorted(raw.glob("*.json")):
        part = j.name.split("_")[0]
        doc = json.loads(j.read_text())
        labels = sorted({s["label"] for s in doc["shapes"]})
        if part not in split_of or any(lbl not in classes for lbl in labels):
            continue
        image_id = f"demo/{j.stem}"
        man.append(
            dict(
                id=image_id,
                source="demo",
                path=str(raw / f"{j.stem}.png"),
                sha256=j.stem,
                width=64,
                height=64,
                mode="RGB",
                label=labels[0] if labels else "normal",
                labels="|".join(labels),
                split=split_of[part],
                group=part,
            )
        )
        for s in doc["shapes"]:
            xs, ys = zip(*s["points"], strict=True)
            ann.append(
                dict(
                    image_id=image_id,
                    label=s["label"],
                    shape="polygon",
                    points=json.dumps(s["points"]),
                    mask_path="",
                    mask_threshold=127,
                    x0=min(xs),
                    y0=min(ys),
                    x1=max(xs),
                    y1=max(ys),
                    area=1.0,
                )
            )
    table = [{"name": c, "id": i + 1, "color": COLORS[c]} for i, c in enumerate(classes)]
    out = root / "processed"
    rasterize_dataset(pd.DataFrame(man), pd.DataFrame(ann), table, out, resolution=resolution, workers=1, k_shot=k_shot)
    (root / "interim").mkdir(exist_ok=True)  # as ingest leaves it: classify reads the source images it lists
    pd.DataFrame(man).to_parquet(root / "interim" / "manifest.parquet", index=False)
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> ProcessedDataset:
    return ProcessedDataset.load(make_tiny_processed(tmp_path_factory.mktemp("tiny"), resolution=48))


# --------------------------------------------------------------------------- targets


def test_targets_ratio_count_balance_and_overrides():
    counts = {"normal": 100, "bump": 10, "dust": 40}
    assert compute_targets(counts, ["bump", "dust"], "ratio", 0.5) == {"bump": 50, "dust": 50}
    assert compute_targets(counts, ["bump", "dust"], "count", count=30) == {"bump": 30, "dust": 30}
    assert compute_targets(counts, ["bump", "dust"], "balance") == {"bump": 90, "dust": 60}
    assert compute_targets(counts, ["bump", "dust"], "ratio", 0.25, per_class={"dust": 0}) == {"bump": 25, "dust": 0}
    # balance: "largest" may be a defect class
    assert compute_targets({"normal": 5, "bump": 9, "dust": 2}, ["bump", "dust"], "balance") == {"bump": 0, "dust": 7}
    table = targets_table(counts, {"bump": 50, "dust": 50})
    assert "bump" in table and "60" in table.splitlines()[2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"per_class": {"scratch": 3}}, "per_class.scratch: unknown class"),
        ({"per_class": {"bump": -1}}, "per_class.bump: must be >= 0"),
        ({"mode": "double"}, "mode: must be one of"),
        ({"mode": "count", "count": -2}, "count: must be >= 0"),
    ],
)
def test_targets_bad_values_name_the_key(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        compute_targets({"normal": 10, "bump": 1}, ["bump"], **kwargs)


def test_targets_ratio_needs_normals():
    with pytest.raises(ConfigError, match="needs normal train images"):
        compute_targets({"bump": 3}, ["bump"], "ratio", 0.5)


# --------------------------------------------------------------------------- foreground and placement


def scene(size=64, backlit=False, seed=0, box=(16, 16, 48, 48)):
    """A textured square object on a flat background (bright object, or dark on bright when backlit)."""
    rng = np.random.default_rng(seed)
    img = np.full((size, size), 230.0 if backlit else 20.0)
    y0, x0, y1, x1 = box
    img[y0:y1, x0:x1] = (60.0 if backlit else 160.0) + rng.normal(0, 25, (y1 - y0, x1 - x0))
    img += rng.normal(0, 1.0, img.shape)
    truth = np.zeros((size, size), bool)
    truth[y0:y1, x0:x1] = True
    return np.clip(img, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("backlit", [False, True])
def test_foreground_is_the_textured_object(backlit):
    img, truth = scene(backlit=backlit)
    fg = foreground_mask(img)  # the outline may be off by the texture window (5 px) / 2 + smoothing
    assert not (fg & ~ndimage.binary_dilation(truth, iterations=3)).any()
    assert fg[ndimage.binary_erosion(truth, iterations=3)].all()


def test_foreground_all_object_when_texture_is_unimodal():
    img = np.random.default_rng(0).normal(128, 20, (64, 64)).clip(0, 255).astype(np.uint8)
    assert foreground_mask(img).all()


def test_warp_flips_rotations_and_scale():
    a = np.zeros((5, 7), np.float32)
    a[0, 0] = 1
    assert np.array_equal(warp(a, Transform(), order=0), a)
    assert np.array_equal(warp(a, Transform(flip_h=True), order=0), a[:, ::-1])
    assert np.array_equal(warp(a, Transform(flip_v=True), order=0), a[::-1])
    r = warp(a, Transform(angle=90.0), order=0)
    assert r.shape == (7, 5) and r.sum() == 1
    assert np.array_equal(np.rot90(a, -1), r) or np.array_equal(np.rot90(a, 1), r)
    big = np.ones((10, 10), np.float32)
    assert abs((warp(big, Transform(scale=2.0), order=1) > 0.5).sum() - 400) <= 40


def _source(img, mask, sid="src"):
    return DefectSource(sid, 1, img, mask, foreground_mask(img))


def test_surface_defect_lands_inside_the_object_and_the_image():
    src_img, _ = scene(seed=1)
    mask = np.zeros((64, 64), bool)
    mask[28:34, 30:35] = True  # on the object
    target_img, truth = scene(seed=2, box=(4, 30, 40, 62))  # object elsewhere, touching nothing
    target_fg = foreground_mask(target_img)
    s = PlacementSettings(tries=300)
    for seed in range(15):
        p = place_defect(_source(src_img, mask), target_fg, np.random.default_rng(seed), s)
        assert p is not None
        h, w = p.mask.shape
        assert 0 <= p.top and p.top + h <= 64 and 0 <= p.left and p.left + w <= 64
        placed = compose_labelmap((64, 64), [p]) > 0
        assert placed.any() and truth[placed].all(), seed  # every defect pixel on the object
        assert p.agreement >= s.min_context_agreement


def test_edge_defect_lands_on_an_edge():
    src_img, src_truth = scene(seed=3)
    mask = np.zeros((64, 64), bool)
    mask[13:20, 26:34] = True  # straddles the object's top edge at row 16
    target_img, truth = scene(seed=4, box=(24, 8, 56, 40))
    s = PlacementSettings(tries=400, min_context_agreement=0.85)
    found = 0
    for seed in range(8):
        p = place_defect(_source(src_img, mask), foreground_mask(target_img), np.random.default_rng(seed), s)
        if p is None:
            continue
        found += 1
        placed = compose_labelmap((64, 64), [p]) > 0
        assert truth[placed].any() and (~truth[placed]).any(), seed  # part on, part off the object
    assert found >= 6


def test_no_placement_when_nothing_is_valid():
    src_img, _ = scene(seed=1)
    mask = np.zeros((64, 64), bool)
    mask[28:34, 30:35] = True
    target_fg = np.zeros((64, 64), bool)  # no object at all
    assert (
        place_defect(_source(src_img, mask), target_fg, np.random.default_rng(0), PlacementSettings(tries=50)) is None
    )


def test_copy_paste_changes_only_mask_and_feather_band():
    src_img, _ = scene(seed=1)
    src_img = src_img.copy()
    mask = np.zeros((64, 64), bool)
    mask[28:34, 30:35] = True
    src_img[mask] = 255
    target, _ = scene(seed=2)
    p = place_defect(_source(src_img, mask), foreground_mask(target), np.random.default_rng(0), PlacementSettings())
    labels = compose_labelmap(target.shape, [p])
    out = CopyPaste(feather=1.0, match_intensity=False).render(target, labels, [p], seed=0)
    assert out.shape == target.shape and out.dtype == np.uint8
    near = np.zeros_like(labels, bool)
    near[p.slices] = True
    assert np.array_equal(out[~near], target[~near])
    assert out[labels > 0].mean() > 200  # the white defect was pasted


def test_cutmix_mixes_boxes_and_targets():
    x = torch.stack([torch.full((3, 16, 16), float(i)) for i in range(4)])
    y = torch.eye(4)
    cm = CutMix(alpha=1.0, prob=1.0)
    x2, y2 = cm.mix_batch(x, y, torch.Generator().manual_seed(0))
    assert torch.allclose(y2.sum(1), torch.ones(4))
    for i in range(4):  # the target weight of each source equals its share of the pixels
        share = torch.stack([(x2[i, 0] == j).float().mean() for j in range(4)])
        assert torch.allclose(share, y2[i], atol=1e-6)
    again = cm.mix_batch(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(again[0], x2) and torch.equal(again[1], y2)
    x3, y3 = create_method("cutmix", prob=0.0).mix_batch(x, y, torch.Generator().manual_seed(0))
    assert torch.equal(x3, x) and torch.equal(y3, y)


def test_registry_names_and_errors():
    assert {"none", "cutmix", "copy_paste", "syndgan", "hybrid", "generation"} <= set(available_methods())
    assert not create_method("none").produces_images and not create_method("cutmix").produces_images
    with pytest.raises(ConfigError, match="unknown augmentation method 'gan2'.*copy_paste"):
        create_method("gan2")
    with pytest.raises(ConfigError, match="copy_paste"):
        create_method("copy_paste", feathering=3)


# --------------------------------------------------------------------------- generation on real (tiny) data


def test_generate_counts_files_provenance_and_determinism(tiny, tmp_path):
    pool = train_pool(tiny)
    targets = {"bump": 3, "chipping": 2, "dust": 4}
    m = generate_augmented(tiny, create_method("copy_paste"), targets, tmp_path / "a", pool, seed=5)
    assert m.groupby("label").size().to_dict() == targets
    assert list(m["rank"][m["label"] == "dust"]) == [0, 1, 2, 3]
    assert set(m["method"]) == {"copy_paste"} and set(m["split"]) == {"train"}
    check_provenance(m, pool, tmp_path / "a" / "manifest.parquet", tiny.index)
    ids = tiny.class_ids
    for row in m.itertuples():
        lm = np.asarray(Image.open(tmp_path / "a" / row.labelmap))
        assert set(np.unique(lm)) == {0, ids[row.label]}
        img = np.asarray(Image.open(tmp_path / "a" / row.image))
        assert img.shape == (48, 48, 3)
        t = json.loads(row.transform)
        assert t[0]["source"] == row.mask_source
        if row.label != "chipping":  # surface defects sit on the object of their normal image
            normal = tiny.read_image(tiny.index.set_index("id").loc[row.normal_source, "image"])
            assert foreground_mask(normal)[lm > 0].mean() >= 0.9
    m2 = generate_augmented(tiny, create_method("copy_paste"), targets, tmp_path / "b", pool, seed=5)
    pd.testing.assert_frame_equal(m, m2)
    for rel in m["image"]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_provenance_rejects_val_and_test_sources(tiny, tmp_path):
    pool = train_pool(tiny)
    m = generate_augmented(tiny, create_method("copy_paste"), {"bump": 1}, tmp_path, pool, seed=0)
    test_normal = tiny.index[(tiny.index["split"] == "test") & (tiny.index["label"] == "normal")]["id"].iloc[0]
    val_bump = tiny.index[(tiny.index["split"] == "val") & (tiny.index["label"] == "bump")]["id"].iloc[0]
    bad = m.copy()
    bad.loc[0, "normal_source"] = test_normal
    with pytest.raises(DataError, match="normal_source .* is in split 'test'"):
        check_provenance(bad, pool, "manifest.parquet", tiny.index)
    bad = m.copy()
    bad.loc[0, "mask_source"] = val_bump
    with pytest.raises(DataError, match="mask_source .* is in split 'val'"):
        check_provenance(bad, pool, "manifest.parquet", tiny.index)
    bad = m.copy()
    bad.loc[0, "mask_source"] = bad.loc[0, "normal_source"]  # a train image without that defect
    with pytest.raises(DataError, match="has no 'bump' defect"):
        check_provenance(bad, pool, "manifest.parquet", tiny.index)


def test_rasterize_decides_the_train_pool_once(tmp_path):
    ds = ProcessedDataset.load(make_tiny_processed(tmp_path, classes=("bump", "dust"), k_shot=1))
    assert (ds.k_shot, ds.k_shot_seed) == (1, 0)
    train = ds.split("train")
    pool = train_pool(ds)
    assert pool.groupby("label").size().to_dict() == {
        "normal": (train["label"] == "normal").sum(),
        "bump": 1,
        "dust": 1,
    }
    assert pool.equals(select_k_shot(train, 1, 0, ds.class_names))


def test_k_shot_keeps_k_per_class_and_augment_uses_only_those(tiny, tmp_path):
    train = tiny.split("train")
    kept = select_k_shot(train, 2, seed=0, classes=tiny.class_names)
    assert kept.groupby("label").size().to_dict() == {
        "normal": (train["label"] == "normal").sum(),
        **dict.fromkeys(tiny.class_names, 2),
    }
    assert kept.equals(select_k_shot(train, 2, seed=0, classes=tiny.class_names))
    assert select_k_shot(train, None, 0, tiny.class_names).equals(train)
    m = generate_augmented(tiny, create_method("copy_paste"), {"bump": 6}, tmp_path, kept, seed=0)
    assert set(m["mask_source"]) <= set(kept["id"])
    with pytest.raises(DataError, match="not in the train pool"):
        check_provenance(m, select_k_shot(train, 1, seed=7, classes=tiny.class_names), "m", tiny.index)


def test_a_new_method_is_one_class(tiny, tmp_path):
    @register_method
    class Invert(AugmentMethod):
        name = "test_invert"

        def render(self, normal, labelmap, placements, seed):
            out = normal.copy()
            out[labelmap > 0] = 255 - out[labelmap > 0]
            return out

    try:
        m = generate_augmented(tiny, create_method("test_invert"), {"dust": 2}, tmp_path, train_pool(tiny), seed=0)
        assert list(m["method"]) == ["test_invert"] * 2
    finally:
        METHODS.pop("test_invert")


def _write_params(tmp_path, processed: Path, **sections) -> Path:
    raw = {
        "ingest": {
            "classes": {c["name"]: c["color"] for c in json.loads((processed / "dataset.json").read_text())["classes"]}
        },
        "rasterize": {"out": str(processed)},
        "augment": {"targets": {"mode": "count", "count": 2}, "out": str(tmp_path / "augmented")},
    }
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_augment_stage_outputs(tiny, tmp_path):
    from pipeline.augment import main

    params = _write_params(tmp_path, tiny.root)
    assert main(["--method", "copy_paste", "--params", str(params)]) == 0
    out = tmp_path / "augmented" / "copy_paste"
    info = json.loads((out / "augment.json").read_text())
    assert info["targets"] == {"bump": 2, "chipping": 2, "dust": 2} and info["images"] == 6
    m = pd.read_parquet(out / "manifest.parquet")
    assert (
        len(m) == 6 and all((out / p).is_file() for p in m["image"]) and all((out / p).is_file() for p in m["labelmap"])
    )
    assert main(["--method", "cutmix", "--params", str(params)]) == 0
    info = json.loads((tmp_path / "augmented" / "cutmix" / "augment.json").read_text())
    assert info["produces_images"] is False and info["options"] == {"alpha": 1.0, "prob": 0.5}
    assert pd.read_parquet(tmp_path / "augmented" / "cutmix" / "manifest.parquet").empty
    assert main(["--method", "nonsense", "--params", str(params)]) == 1


def test_syndgan_method_paints_through_the_synthesizer(tmp_path):
    pytest.importorskip("syndgan.synthesis", reason="syndgan.synthesis (issue #4) is not in this checkout yet")
    helpers = pytest.importorskip("synth_helpers", reason="tests/synth_helpers.py (issue #4) is not here yet")
    ckpt = helpers.write_synthesizer(tmp_path / "synthesizer.pt")
    names = [c["name"] for c in helpers.CLASSES]
    ds = ProcessedDataset.load(make_tiny_processed(tmp_path / "data", classes=tuple(names), resolution=32))
    pool = train_pool(ds)
    method = create_method("syndgan", checkpoint=str(ckpt), device="cpu")
    m = generate_augmented(ds, method, {names[0]: 2}, tmp_path / "aug", pool, seed=0)
    assert len(m) == 2
    check_provenance(m, pool, "m", ds.index)
    for row in m.itertuples():
        out = np.asarray(Image.open(tmp_path / "aug" / row.image))
        normal = ds.read_image(ds.index.set_index("id").loc[row.normal_source, "image"])
        lm = np.asarray(Image.open(tmp_path / "aug" / row.labelmap))
        assert out.shape == normal.shape and (lm > 0).any()
        assert not np.array_equal(out, normal)  # something was painted
    wrong = create_method("syndgan", checkpoint=str(ckpt), device="cpu")
    with pytest.raises(DataError, match="trained for classes"):
        wrong.prepare(["scratch"])
    with pytest.raises(DataError, match="not found"):
        create_method("syndgan", checkpoint=str(tmp_path / "nope.pt")).prepare(names)
