"""Datasets the way people keep them: unlabelled normals beside (or apart from) the annotations, duplicates
added to a folder that ingested cleanly, and MVTec AD's own train/test split."""

from __future__ import annotations

import pytest

from pipeline.config import parse_params
from syndgan.data.ingest import Source, ingest
from syndgan.errors import ConfigError

SQUARE = [(2, 2), (10, 2), (10, 8), (2, 8)]


def _labels(result) -> dict[str, str]:
    return dict(zip(result.manifest["id"], result.manifest["label"], strict=True))


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
