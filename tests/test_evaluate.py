"""The evaluate stage on a tiny project in the real formats: 32 px processed data, augment outputs made by the
augment stage, an untrained synthesizer and ablation model, train_synth metrics JSONs."""

from __future__ import annotations

import contextlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from evaluate_helpers import make_project, write_params
from PIL import Image

from pipeline import evaluate
from pipeline.config import load_params
from syndgan.errors import ConfigError
from syndgan.metrics import (
    extract_features,
    fid_from_features,
    get_metric,
    kid_from_features,
    resolve_metric_name,
)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    with contextlib.chdir(root):
        params = load_params(make_project(root))
        result = evaluate.run(params)
    return root, params, result


def _names():
    return {k: resolve_metric_name(k) for k in ("fid", "kid", "ic_perceptual")}


def test_honest_names_per_class_and_pooled(evaluated):
    root, _, result = evaluated
    on_disk = json.loads((root / "metrics" / "evaluate.json").read_text())
    assert on_disk["synthesis"] == json.loads(json.dumps(result["synthesis"]))
    n = _names()
    assert on_disk["metric_names"] == {"fid": n["fid"], "kid": n["kid"], "ic": n["ic_perceptual"]}
    assert on_disk["sets"] == ["real_train", "copy_paste", "syndgan", "syndgan_no_pretrain"]
    for set_name in on_disk["sets"]:
        entries = on_disk["synthesis"][set_name]
        assert set(entries) == {"bump", "dust", "all"}
        bump = entries["bump"]
        for key in (n["fid"], f"{n['kid']}_x1e3_mean", f"{n['kid']}_x1e3_std", f"{n['kid']}_subset_size"):
            assert isinstance(bump[key], float) and math.isfinite(bump[key]), (set_name, key)
        assert bump[n["fid"]] >= 0
        # KID subset size is capped at the smaller set
        assert bump[f"{n['kid']}_subset_size"] == min(bump["images"], bump["reference_images"]) == 3
        pooled = entries["all"]
        assert pooled["images"] == entries["bump"]["images"] + entries["dust"]["images"]
        assert pooled["reference_images"] == 4
        assert isinstance(pooled[n["fid"]], float)
    # synthesized sets are capped at max_images_per_class
    assert on_disk["synthesis"]["copy_paste"]["bump"]["images"] == 4
    assert on_disk["synthesis"]["syndgan_no_pretrain"]["bump"]["images"] == 3
    assert on_disk["synthesis"]["real_train"]["bump"]["images"] == 4  # the real train defects


def test_class_with_one_test_image_is_na_not_a_crash(evaluated):
    _, _, result = evaluated
    n = _names()
    dust = result["synthesis"]["copy_paste"]["dust"]
    assert dust["reference_images"] == 1
    assert dust[n["fid"]] is None and dust[f"{n['kid']}_x1e3_mean"] is None
    assert "n/a" in dust["notes"] and "1 real test" in dust["notes"]
    assert isinstance(dust[n["ic_perceptual"]], float)  # IC needs no test image
    assert result["synthesis"]["copy_paste"]["bump"]["notes"] == ""


def _read_first(root, method, label, k):
    folder = root / "data" / "augmented" / method
    m = pd.read_parquet(folder / "manifest.parquet")
    rows = m[m["label"] == label].sort_values("rank").head(k)
    return [np.asarray(Image.open(folder / p).convert("RGB")) for p in rows["image"]]


def test_values_equal_a_direct_computation(evaluated):
    root, params, result = evaluated
    n = _names()
    idx = pd.read_parquet(root / "data" / "processed" / "index.parquet")
    test = idx[(idx["split"] == "test") & (idx["label"] == "bump")].sort_values("id")
    real = [np.asarray(Image.open(root / "data" / "processed" / p).convert("RGB")) for p in test["image"]]
    fake = _read_first(root, "copy_paste", "bump", 4)
    kind = n["fid"].split("_", 1)[1]
    fr, ff = extract_features(real, kind), extract_features(fake, kind)
    entry = result["synthesis"]["copy_paste"]["bump"]
    assert entry[n["fid"]] == pytest.approx(fid_from_features(fr, ff), rel=1e-6, abs=1e-6)
    mean, std, size = kid_from_features(fr, ff, subsets=params.evaluate.kid_subsets, seed=params.evaluate.seed)
    assert entry[f"{n['kid']}_x1e3_mean"] == pytest.approx(mean * 1e3, rel=1e-6, abs=1e-9)
    assert entry[f"{n['kid']}_x1e3_std"] == pytest.approx(std * 1e3, rel=1e-6, abs=1e-9)
    # IC: the registry metric's own value (features memoized inside evaluate must not change it)
    train = idx[(idx["split"] == "train") & (idx["label"] == "bump")].sort_values("id")
    anchors = [np.asarray(Image.open(root / "data" / "processed" / p).convert("RGB")) for p in train["image"]]
    ic = get_metric(n["ic_perceptual"]).compute(anchors, fake)
    assert entry[n["ic_perceptual"]] == pytest.approx(ic[n["ic_perceptual"]], rel=1e-9)
    assert entry[f"{n['ic_perceptual']}_clusters"] == ic[f"{n['ic_perceptual']}_clusters"]
    # pooled = the classes' images together, against all test defects
    test_all = idx[(idx["split"] == "test") & (idx["label"] != "normal")].sort_values(["label", "id"])
    real_all = [np.asarray(Image.open(root / "data" / "processed" / p).convert("RGB")) for p in test_all["image"]]
    fake_all = fake + _read_first(root, "copy_paste", "dust", 4)
    fid_all = fid_from_features(extract_features(real_all, kind), extract_features(fake_all, kind))
    assert result["synthesis"]["copy_paste"]["all"][n["fid"]] == pytest.approx(fid_all, rel=1e-5, abs=1e-5)


def test_not_run_entries_and_reconstruction_table(evaluated):
    root, _, result = evaluated
    assert "cutmix" in result["not_run"] and "no images" in result["not_run"]["cutmix"]
    assert "not found" in result["not_run"]["syndgan_no_inversion"]
    recon = result["reconstruction"]
    assert set(recon["models"]) == {"syndgan", "no_pretrain"}
    assert recon["models"]["no_pretrain"]["recon_perceptual_effnet_normal"] == 0.2516
    assert "no_inversion" in recon["not_run"]
    text = (root / "metrics" / "evaluate_table.md").read_text()
    assert "| SyNDGAN (ours) | 0.1743 | 0.1813 |" in text
    assert "| w/o Pretrained | 0.2516 | 0.2615 |" in text
    fid = result["synthesis"]["syndgan"]["all"][_names()["fid"]]
    assert f"| SyNDGAN (ours) | 8 | 4 | {fid:.2f} |" in text
    csv = pd.read_csv(root / "metrics" / "evaluate_table_synthesis.csv")
    assert len(csv) == 4 * 3 and set(csv["set"]) == set(result["sets"])


def test_ablation_images_use_augments_pairing(evaluated):
    root, _, _ = evaluated
    ablation = pd.read_parquet(root / "data" / "evaluate" / "syndgan_no_pretrain" / "manifest.parquet")
    syndgan = pd.read_parquet(root / "data" / "augmented" / "syndgan" / "manifest.parquet")
    assert ablation.groupby("label").size().to_dict() == {"bump": 3, "dust": 3}
    cols = ["label", "rank", "normal_source", "mask_source", "transform"]
    merged = ablation[cols].merge(syndgan[cols], on=["label", "rank"], suffixes=("", "_s"))
    assert len(merged) == 6
    for c in ("normal_source", "mask_source", "transform"):
        assert (merged[c] == merged[f"{c}_s"]).all(), c
    made = json.loads((root / "data" / "evaluate" / "synthesized.json").read_text())
    assert made["syndgan_no_pretrain"]["images"] == 6
    a = np.asarray(Image.open(root / "data" / "evaluate" / "syndgan_no_pretrain" / ablation["image"].iloc[0]))
    s = syndgan.set_index(["label", "rank"]).loc[(ablation["label"].iloc[0], ablation["rank"].iloc[0]), "image"]
    b = np.asarray(Image.open(root / "data" / "augmented" / "syndgan" / s))
    assert a.shape == b.shape and not np.array_equal(a, b)  # another model painted the same placement


@pytest.mark.parametrize(
    "override, match",
    [
        ({"max_images_per_class": 1}, "evaluate.max_images_per_class"),
        ({"quality_metrics": ["lpips_vgg"]}, "evaluate.quality_metrics"),
        ({"methods": ["copy_paste", "copy_paste"]}, "evaluate.methods"),
        ({"kid_subset_size": 1}, "evaluate.kid_subset_size"),
    ],
)
def test_bad_evaluate_params_fail_naming_the_key(tmp_path, override, match):
    with pytest.raises(ConfigError, match=match):
        load_params(write_params(tmp_path, **override))


def test_paired_metric_is_rejected():
    from syndgan.report.quality import create_quality_metrics

    with pytest.raises(ConfigError, match="paired"):
        create_quality_metrics(["perceptual"])
