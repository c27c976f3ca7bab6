"""The `hybrid` augmentation method (issue 12, lever 5): copy-paste with the pasted mask's rim repainted by the
synthesis network; checked on a 32 px synthesizer, through the stages (augment, classify, evaluate) and in
dvc.yaml."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from evaluate_helpers import CLASSES, make_processed, write_params, write_synthesizer
from scipy import ndimage

from pipeline.config import load_params, parse_params
from syndgan.augment import PlacementSettings, create_method
from syndgan.augment.copy_paste import CopyPaste
from syndgan.augment.hybrid import rim_labels
from syndgan.augment.placement import DefectSource, compose_labelmap, place_defect
from syndgan.errors import ConfigError, DataError
from syndgan.report.tables import set_label

ROOT = Path(__file__).resolve().parents[1]
NAMES = [c["name"] for c in CLASSES]


def _smooth(seed: int, size: int = 32) -> np.ndarray:
    from PIL import Image

    base = np.random.default_rng(seed).uniform(60, 190, (4, 4, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(base).resize((size, size), Image.Resampling.BILINEAR)).copy()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_synthesizer(tmp_path_factory.mktemp("hybrid") / "synthesizer.pt")


def test_hybrid_repaints_only_the_rim_of_the_pasted_defect(checkpoint):
    src = _smooth(1)
    mask = np.zeros((32, 32), bool)
    mask[9:23, 9:23] = True  # 14 x 14: a real interior survives a 2 px rim plus the network's margin
    src[mask] = 240
    fixed = PlacementSettings(flip=False, rotate90=False, max_rotation=0.0, scale=[1.0, 1.0], min_context_agreement=0)
    full = np.ones((32, 32), bool)
    p = place_defect(DefectSource("src", 1, src, mask, full), full, np.random.default_rng(0), fixed)
    normal = _smooth(2)
    labels = compose_labelmap(normal.shape[:2], [p])
    paste = {"feather": 1.5, "match_intensity": False}
    pasted = CopyPaste(**paste).render(normal, labels, [p], seed=5)
    method = create_method("hybrid", checkpoint=str(checkpoint), device="cpu", band=2, paste=paste)
    method.prepare(NAMES)
    out = method.render(normal, labels, [p], seed=5)
    assert out.shape == normal.shape and out.dtype == np.uint8
    rim = rim_labels(labels.shape, [p], 2)
    assert set(np.unique(rim)) == {0, 1} and not rim[ndimage.binary_erosion(labels > 0, iterations=2)].any()
    dilate, feather = method.load().blend_margins(1.0)  # a 32 px image at the network's 32 px: 1 px per px
    untouched = ndimage.distance_transform_edt(rim == 0) > dilate + feather
    interior, far = untouched & (labels > 0), untouched & (labels == 0)
    assert interior.sum() >= 4 and far.sum() > 300
    assert np.array_equal(out[untouched], pasted[untouched])  # interior and surroundings: the copy-paste image
    assert (out[interior] == 240).all()  # ... so the interior is the real pasted defect
    seam = ~untouched
    assert np.abs(out[seam].astype(int) - pasted[seam]).mean() > 1.0  # the seam band was repainted
    assert np.array_equal(method.render(normal, labels, [p], seed=5), out)


def test_hybrid_refuses_a_checkpoint_for_other_classes(checkpoint):
    method = create_method("hybrid", checkpoint=str(checkpoint), device="cpu")
    with pytest.raises(DataError, match=r"trained for classes \['bump', 'dust'\].*\['bump', 'scratch'\]") as e:
        method.prepare(["bump", "scratch"])
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="not found"):
        create_method("hybrid", checkpoint=str(checkpoint.parent / "nope.pt")).prepare(NAMES)


@pytest.mark.parametrize(
    "hybrid, key",
    [
        ({"band": 0}, "augment.hybrid.band"),
        ({"paste": {"feather": -1.0}}, "augment.hybrid.paste.feather"),
        ({"paste": {"feathr": 1.0}}, "augment.hybrid.paste.feathr"),
    ],
)
def test_bad_hybrid_params_name_the_key(hybrid, key):
    from pipeline.methods import validate

    with pytest.raises(ConfigError) as e:
        validate(parse_params({"augment": {"hybrid": hybrid}}))
    assert key in str(e.value) and "\n" not in str(e.value)


def test_hybrid_through_augment_classify_and_evaluate(tmp_path):
    """classify.methods: [..., hybrid] and evaluate.methods: [..., hybrid] work; every evaluated set has its IC."""
    from pipeline import augment, classify, evaluate, methods

    make_processed(tmp_path / "data" / "processed")
    write_synthesizer(tmp_path / "models" / "train_synth" / "synthesizer.pt")
    path = write_params(tmp_path, methods=["copy_paste", "syndgan", "hybrid"], ablations=False)
    raw = yaml.safe_load(path.read_text())
    raw["augment"]["hybrid"] = {"band": 1, "paste": {"feather": 1.0, "match_intensity": True}, "device": "cpu"}
    raw["classify"] = {
        "methods": ["none", "copy_paste", "hybrid"],
        "seeds": [0],
        "train": {"resolution": 32, "batch_size": 4, "epochs": 1, "input": "processed", "pretrained": False},
        "save_model": False,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with contextlib.chdir(tmp_path):
        params = load_params(path)
        assert methods.options(params, "hybrid")["paste"] == {"feather": 1.0, "match_intensity": True}
        for method in ("copy_paste", "syndgan", "hybrid"):
            augment.run(params, method)
        info = json.loads((tmp_path / "data/augmented/hybrid/augment.json").read_text())
        assert info["options"] == {"band": 1, "device": "cpu", "paste": {"feather": 1.0, "match_intensity": True}}
        assert info["images"] == 10  # count 5 per class
        assert classify.main(["--method", "hybrid", "--seed", "0", "--params", str(path)]) == 0
        run = json.loads((tmp_path / "reports/classify/hybrid-s0/metrics.json").read_text())
        assert run["doses"]["all"]["synthetic_per_class"] == {"normal": 0, "bump": 5, "dust": 5}
        result = evaluate.run(params)
    ic = result["metric_names"]["ic"]
    assert result["sets"] == ["real_train", "copy_paste", "syndgan", "hybrid"]
    for name in result["sets"]:  # the diversity of every evaluated set, per class and pooled
        for cls in ("bump", "all"):
            assert np.isfinite(result["synthesis"][name][cls][ic]), (name, cls)
    lines = (tmp_path / "metrics" / "evaluate_table.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| set"))  # the pooled table
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start + 2 : start + 6]]
    col = header.index(f"{ic} ↑")
    assert [r[0] for r in rows] == [set_label(n) for n in result["sets"]]
    assert all(float(r[col]) > 0 for r in rows), rows  # a number for every method, copy_paste and hybrid included


def test_dvc_yaml_has_a_hybrid_augment_stage_outside_the_default_grid():
    from pipeline.tools.dvcgraph import load_graph

    g = load_graph(ROOT)
    stage = g.stages["augment@hybrid"]
    assert ROOT / "models/train_synth/synthesizer.pt" in stage.deps and "train_synth" in stage.upstream
    assert not [name for name in g.order if name.startswith("classify@hybrid")]  # demo grid unchanged
    assert "hybrid" not in load_params(ROOT / "params.yaml").classify.methods
