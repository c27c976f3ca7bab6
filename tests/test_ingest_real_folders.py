"""Datasets the way people keep them: unlabelled normals beside (or apart from) the annotations, duplicates
added to a folder that ingested cleanly, and MVTec AD's own train/test split."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from pipeline.config import parse_params
from pipeline.ingest import main
from syndgan.data.ingest import Source, ingest
from syndgan.errors import ConfigError, DuplicateImageError

SQUARE = [(2, 2), (10, 2), (10, 8), (2, 8)]


def _labels(result) -> dict[str, str]:
    return dict(zip(result.manifest["id"], result.manifest["label"], strict=True))


# --------------------------------------------------------------------------- duplicates


def _stage(tmp_path, on_error="fail"):
    doc = {
        "ingest": {
            "sources": [{"format": "labelme", "root": "lm"}],
            "classes": {"scratch": [255, 0, 0]},
            "out": "interim",
            "on_error": on_error,
        }
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    return main([])


def test_duplicate_added_to_an_ingested_folder_is_the_one_rejected(
    tmp_path, monkeypatch, capsys, ingest_image, ingest_labelme
):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "lm"
    for stem in ("m", "n"):
        ingest_image(root / f"{stem}.png")
        ingest_labelme(root / f"{stem}.json", shapes=[("scratch", SQUARE)] if stem == "m" else [])
    assert _stage(tmp_path) == 0
    before = pd.read_parquet("interim/manifest.parquet")

    # newcomers that sort before the ingested files: another JSON for m.png, a byte copy of n.png
    ingest_labelme(root / "a_second_look.json", image_path="m.png")
    shutil.copy(root / "n.png", root / "a_copy.png")
    ingest_labelme(root / "a_copy.json")
    capsys.readouterr()
    assert _stage(tmp_path) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (
        f"ingest: error: {root / 'a_second_look.json'}: annotates the same image 'm.png' as {root / 'm.json'}, "
        "which is kept (already ingested)"
    )
    assert pd.read_parquet("interim/manifest.parquet").equals(before)  # a failed run changes nothing

    assert _stage(tmp_path, on_error="skip") == 0
    after = pd.read_parquet("interim/manifest.parquet")
    assert after.set_index("id")["annotation"].to_dict() == {"lm/m": "lm/m.json", "lm/n": "lm/n.json"}
    skipped = json.loads((tmp_path / "interim" / "ingest_report.json").read_text())["skipped"]
    assert [(s["path"], s["problem"]) for s in skipped] == [
        (
            "lm/a_second_look.json",
            f"annotates the same image 'm.png' as {root / 'm.json'}, which is kept (already ingested)",
        ),
        ("lm/a_copy.png", f"same image as {root / 'n.png'} (identical sha256), which is kept (already ingested)"),
    ]


def test_first_ingest_keeps_the_first_by_image_id_and_names_both(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    ingest_image(root / "n.png")
    ingest_labelme(root / "n.json")
    shutil.copy(root / "n.png", root / "a_copy.png")
    ingest_labelme(root / "a_copy.json")
    with pytest.raises(DuplicateImageError) as e:
        ingest([Source("labelme", root)], [])
    assert str(e.value) == (
        f"{root / 'n.png'}: same image as {root / 'a_copy.png'} (identical sha256), "
        "which is kept (first by image id, then annotation file)"
    )


# --------------------------------------------------------------------------- MVTec's own split


def _mvtec(root, ingest_image, ingest_mask, n_train=10):
    cat = root / "screw"
    for i in range(n_train):
        ingest_image(cat / "train" / "good" / f"{i:03d}.png")
    for i in range(3):
        ingest_image(cat / "test" / "good" / f"{i:03d}.png")
    for i in range(4):
        ingest_image(cat / "test" / "scratch" / f"{i:03d}.png")
        ingest_mask(cat / "ground_truth" / "scratch" / f"{i:03d}_mask.png", boxes=[(2, 3, 6, 5)])


def test_split_source_keeps_mvtec_test_images_in_test(tmp_path, ingest_image, ingest_mask):
    _mvtec(tmp_path / "mvtec", ingest_image, ingest_mask)
    fractions = (0.6, 0.2, 0.2)
    res = ingest([Source("mvtec", tmp_path / "mvtec", split="source")], ["scratch"], split=fractions)
    where = dict(zip(res.manifest["id"], res.manifest["split"], strict=True))
    assert {i for i, s in where.items() if s == "test"} == {i for i in where if "/test/" in i}
    train_ids = [i for i in where if "/train/" in i]
    assert sorted(where[i] for i in train_ids) == ["train"] * 7 + ["val"] * 3  # val carved from train: 10 x 0.2/0.8
    assert res.report["source_split"] == ["mvtec"]

    pooled = ingest([Source("mvtec", tmp_path / "mvtec")], ["scratch"], split=fractions)  # the default: re-split
    moved = pooled.manifest[pooled.manifest["id"].str.contains("/test/") & (pooled.manifest["split"] != "test")]
    assert len(moved) > 0 and pooled.report["source_split"] == []


@pytest.mark.parametrize(
    "source, key",
    [
        ({"format": "labelme", "root": "x", "split": "source"}, "ingest.sources[0].split"),
    ],
)
def test_source_options_are_validated(source, key):
    with pytest.raises(ConfigError) as e:
        parse_params({"ingest": {"sources": [source]}})
    assert key in str(e.value) and "\n" not in str(e.value)
