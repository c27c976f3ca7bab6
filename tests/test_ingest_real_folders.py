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
from syndgan.errors import ConfigError, DataError, DuplicateImageError, PathEscapeError

SQUARE = [(2, 2), (10, 2), (10, 8), (2, 8)]


def _labels(result) -> dict[str, str]:
    return dict(zip(result.manifest["id"], result.manifest["label"], strict=True))


# --------------------------------------------------------------------------- unlabelled images


def test_labelme_images_without_json_are_normal_or_ignored(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    ingest_image(root / "a.png")
    ingest_labelme(root / "a.json", shapes=[("scratch", SQUARE)])
    ingest_image(root / "b.png")
    ingest_labelme(root / "b.json")  # an explicit empty annotation: normal, not unlabelled
    for name in ("n1.png", "n2.jpg", "sub/n3.bmp"):
        ingest_image(root / name)
    ingest_image(root / ".thumbs" / "t.png")  # hidden folders are not data

    res = ingest([Source("labelme", root)], ["scratch"])
    assert _labels(res) == {
        "lm/a": "scratch",
        "lm/b": "normal",
        "lm/n1": "normal",
        "lm/n2": "normal",
        "lm/sub/n3": "normal",
    }
    assert res.report["counts"]["unlabelled"] == {"normal": 3, "ignored": 0}
    assert set(res.manifest.loc[res.manifest["id"] == "lm/n1", "annotation"]) == {""}

    res = ingest([Source("labelme", root, unlabelled="ignore")], ["scratch"])
    assert _labels(res) == {"lm/a": "scratch", "lm/b": "normal"}
    assert res.report["counts"]["unlabelled"] == {"normal": 0, "ignored": 3}


def test_image_of_a_broken_json_is_not_taken_as_normal(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    ingest_image(root / "a.png")
    ingest_labelme(root / "a.json", shapes=[("scratch", SQUARE)])
    ingest_image(root / "broken.png")
    (root / "broken.json").write_text("{ not json")
    res = ingest([Source("labelme", root)], ["scratch"], on_error="skip")
    assert _labels(res) == {"lm/a": "scratch"}
    assert [s["path"] for s in res.report["skipped"]] == [str(root / "broken.json"), str(root / "broken.png")]


def test_labelme_images_in_a_sibling_folder(tmp_path, ingest_image, ingest_labelme):
    ann, images = tmp_path / "line1" / "annotations", tmp_path / "line1" / "images"
    ingest_image(images / "a.png")
    ingest_labelme(ann / "a.json", image_path="..\\images\\a.png", shapes=[("scratch", SQUARE)])  # Windows LabelMe
    ingest_image(images / "c.png")
    ingest_labelme(ann / "c.json", image_path="C:\\Users\\qa\\line1\\c.png", shapes=[("scratch", SQUARE)])  # by name
    ingest_image(images / "b.png")
    ingest_image(images / "d.png")

    res = ingest([Source("labelme", ann, name="line1", images=images)], ["scratch"])
    assert _labels(res) == {"line1/a": "scratch", "line1/b": "normal", "line1/c": "scratch", "line1/d": "normal"}
    assert res.manifest.set_index("id").loc["line1/c", "path"] == str(images / "c.png")
    assert res.report["counts"]["unlabelled"]["normal"] == 2

    with pytest.raises(PathEscapeError, match="leads outside the dataset root"):  # without images: refused, as before
        ingest([Source("labelme", ann, name="line1")], ["scratch"])


def test_stage_takes_unlabelled_images_from_params(tmp_path, monkeypatch, ingest_image, ingest_labelme):
    monkeypatch.chdir(tmp_path)
    ingest_image(tmp_path / "imgs" / "a.png")
    ingest_labelme(tmp_path / "ann" / "a.json", image_path="a.png", shapes=[("scratch", SQUARE)])
    for k in range(3):
        ingest_image(tmp_path / "imgs" / f"n{k}.png")
    source = {"format": "labelme", "root": "ann", "images": "imgs", "unlabelled": "normal"}
    doc = {"ingest": {"sources": [source], "classes": {"scratch": [255, 0, 0]}, "out": "interim"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    assert main([]) == 0
    report = json.loads((tmp_path / "interim" / "ingest_report.json").read_text())
    assert report["counts"]["by_label"] == {"normal": 3, "scratch": 1}
    assert report["counts"]["unlabelled"] == {"normal": 3, "ignored": 0}


def test_coco_and_cvat_images_without_annotations_follow_the_same_rule(tmp_path, ingest_image):
    root = tmp_path / "ds"
    for name in ("a.png", "b.png", "c.png"):
        ingest_image(root / name)
    coco = {
        "images": [{"id": i, "file_name": n} for i, n in enumerate(("a.png", "b.png"))],
        "categories": [{"id": 1, "name": "scratch"}],
        "annotations": [{"id": 1, "image_id": 0, "category_id": 1, "bbox": [1, 1, 5, 5]}],
    }
    (root / "coco.json").write_text(json.dumps(coco))
    (root / "cvat.xml").write_text(
        '<annotations><image name="a.png"><box label="scratch" xtl="1" ytl="1" xbr="6" ybr="6"/></image>'
        '<image name="b.png"/><image name="c.png"><tag label="normal"/></image></annotations>'
    )
    for unlabelled, expected in (("normal", {"ds/a": "scratch", "ds/b": "normal"}), ("ignore", {"ds/a": "scratch"})):
        res = ingest([Source("coco", root, annotations="coco.json", unlabelled=unlabelled)], ["scratch"])
        assert _labels(res) == expected
        res = ingest([Source("cvat", root, annotations="cvat.xml", unlabelled=unlabelled)], ["scratch"])
        assert _labels(res) == {**expected, "ds/c": "normal"}  # a tag is a label: c is stated normal


def test_coco_images_in_their_own_folder(tmp_path, ingest_image):
    ann, images = tmp_path / "export", tmp_path / "pictures"
    for name in ("a.png", "sub/b.png"):
        ingest_image(images / name)
    coco = {"images": [{"id": 0, "file_name": "a.png"}, {"id": 1, "file_name": "sub/b.png"}], "categories": []}
    ann.mkdir()
    (ann / "coco.json").write_text(json.dumps(coco))
    res = ingest([Source("coco", ann, name="c", annotations="coco.json", images=images)], [])
    assert dict(zip(res.manifest["id"], res.manifest["path"], strict=True)) == {
        "c/a": str(images / "a.png"),
        "c/sub/b": str(images / "sub" / "b.png"),
    }


def test_missing_images_folder_is_one_line(tmp_path, ingest_labelme):
    ingest_labelme(tmp_path / "ann" / "a.json")
    with pytest.raises(DataError) as e:
        ingest([Source("labelme", tmp_path / "ann", images=tmp_path / "imgs")], [])
    assert str(e.value) == f"{tmp_path / 'imgs'}: images folder of source 'ann' not found"


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
    # MVTec's train is all good: no defect class can be learnt, and the report says so (one line)
    (warning,) = res.report["warnings"]
    assert warning.startswith("train holds no defect image: nothing downstream can learn it") and "mvtec" in warning

    pooled = ingest([Source("mvtec", tmp_path / "mvtec")], ["scratch"], split=fractions)  # the default: re-split
    moved = pooled.manifest[pooled.manifest["id"].str.contains("/test/") & (pooled.manifest["split"] != "test")]
    assert len(moved) > 0 and pooled.report["source_split"] == []
    assert pooled.report["warnings"] == []


def test_a_labelme_root_without_any_json_is_warned_of(tmp_path, ingest_image, ingest_labelme, caplog):
    """Pointing a LabelMe source at the images folder (its JSONs elsewhere) would make every defect a normal."""
    for i in range(3):
        ingest_image(tmp_path / "imgs" / f"{i}.png")
        ingest_labelme(
            tmp_path / "labels" / f"{i}.json",
            image_path=f"../imgs/{i}.png",
            shapes=[("scratch", [(2, 2), (10, 2), (10, 8), (2, 8)])],
        )
    res = ingest([Source("labelme", tmp_path / "imgs", name="lm")], ["scratch"])
    assert set(res.manifest["label"]) == {"normal"}
    assert any("no LabelMe JSON was read" in w and "3 images" in w for w in res.report["warnings"])
    assert any("no LabelMe JSON was read" in r.message for r in caplog.records if r.levelname == "WARNING")
    good = ingest([Source("labelme", tmp_path, name="lm")], ["scratch"], split=(0.34, 0.33, 0.33))
    assert not any("no LabelMe JSON" in w for w in good.report["warnings"])


@pytest.mark.parametrize("value, expected", [("4.5e7", 45_000_000), (4.5e7, 45_000_000), ("1e3", 1000)])
def test_max_pixels_accepts_a_whole_number_written_as_a_float(value, expected):
    assert parse_params({"ingest": {"max_pixels": value}}).ingest.max_pixels == expected


@pytest.mark.parametrize("value", ["4.5e-3", 12.5, "lots"])
def test_max_pixels_refuses_a_fraction_saying_why(value):
    with pytest.raises(ConfigError) as e:
        parse_params({"ingest": {"max_pixels": value}})
    msg = str(e.value)
    assert "ingest.max_pixels" in msg and "\n" not in msg
    assert ("a whole number" if value != "lots" else "an integer") in msg, msg


@pytest.mark.parametrize(
    "source, key",
    [
        ({"format": "labelme", "root": "x", "split": "source"}, "ingest.sources[0].split"),
        ({"format": "mvtec", "root": "x", "images": "y"}, "ingest.sources[0].images"),
        ({"format": "labelme", "root": "x", "unlabelled": "skip"}, "ingest.sources[0].unlabelled"),
    ],
)
def test_source_options_are_validated(source, key):
    with pytest.raises(ConfigError) as e:
        parse_params({"ingest": {"sources": [source]}})
    assert key in str(e.value) and "\n" not in str(e.value)
