"""The ``masks`` format (class-id mask per image) on tiny generated datasets: ingest, then rasterize."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.rasterize import rasterize_dataset
from syndgan.data.ingest import Source, ingest
from syndgan.errors import AnnotationError, ConfigError, DataError, PairingError

CLASSES = ["scratch", "dent"]  # ids 1 and 2: unlike the mask values, so the map is really applied
TABLE = [{"name": "scratch", "id": 1, "color": [255, 0, 0]}, {"name": "dent", "id": 2, "color": [0, 0, 255]}]
VALUES = {0: "normal", 3: "dent", 7: "scratch", 255: "normal"}  # 255: VOC-style "void" border, background
ID_OF_VALUE = {3: 2, 7: 1}


def _mask(path, arr, mode="L", palette=None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    im = Image.fromarray(np.asarray(arr, np.uint8), "L")
    if mode == "P":
        im = im.convert("P")  # keeps the values as indices (grey palette) ...
        im.putpalette(palette)  # ... then a colour palette that a conversion to "L" would garble
    elif mode == "RGB":
        im = im.convert("RGB")
    im.save(path)
    return path


def _blank():
    return np.zeros((16, 16), np.uint8)


def _dataset(root, ingest_image):
    """img/{a,b,c,d,sub/e}.png, masks in ann/ (same relative path and stem); c has none."""
    for stem in ("a", "b", "c", "d", "sub/e"):
        ingest_image(root / "img" / f"{stem}.png", size=(16, 16))
    a = _blank()
    a[1:3, 1:3] = 3  # dent, 4 px
    a[6:10, 6:14] = 7  # scratch, 32 px
    a[15, :] = 255  # void: background
    d = _blank()
    d[4:12, 2:5] = 3
    palette = [0, 0, 0] * 256
    palette[9:12] = [255, 0, 0]  # index 3 is red: its luminance (76) is no class id
    e = _blank()
    e[0:5, 10:16] = 7
    masks = {
        "a": _mask(root / "ann" / "a.png", a),
        "b": _mask(root / "ann" / "b.png", _blank()),  # all background: normal
        "d": _mask(root / "ann" / "d.png", d, "P", palette),
        "sub/e": _mask(root / "ann" / "sub" / "e.png", e, "RGB"),  # grey saved as RGB
    }
    return {"a": a, "b": _blank(), "c": _blank(), "d": d, "sub/e": e}, masks


def test_masks_ingest_and_rasterize_to_the_class_map(tmp_path, ingest_image):
    root = tmp_path / "seg"
    values, masks = _dataset(root, ingest_image)
    src = Source("masks", root, images=root / "img", masks=root / "ann", mask_values=VALUES)
    res = ingest([src], CLASSES, extract_dir=tmp_path / "x")
    m = res.manifest.set_index("id")
    assert m["label"].to_dict() == {"seg/img/a": "scratch", "seg/img/b": "normal", "seg/img/c": "normal",
                                    "seg/img/d": "dent", "seg/img/sub/e": "scratch"}  # fmt: skip
    assert m.loc["seg/img/a", "labels"] == "dent|scratch" and m.loc["seg/img/b", "labels"] == ""
    assert m.loc["seg/img/b", "annotation"] == str(masks["b"]) and m.loc["seg/img/c", "annotation"] == ""
    assert res.report["counts"]["unlabelled"] == {"normal": 1, "ignored": 0}  # c: no mask
    regions = res.annotations[res.annotations["image_id"] == "seg/img/a"].set_index("label")
    assert regions.loc["dent", ["x0", "y0", "x1", "y1", "area"]].tolist() == [1, 1, 3, 3, 4]
    assert regions.loc["scratch", "area"] == 32
    first = ingest([src], CLASSES, multi_label="first", extract_dir=tmp_path / "x")  # first = lowest value: dent
    assert first.manifest.set_index("id").loc["seg/img/a", "label"] == "dent"

    for path, data in res.files.items():  # what pipeline.ingest writes
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    out = tmp_path / "processed"
    rasterize_dataset(res.manifest, res.annotations, TABLE, out, resolution=16, workers=1)
    index = pd.read_parquet(out / "index.parquet").set_index("id")
    lut = np.zeros(256, np.uint8)
    for value, class_id in ID_OF_VALUE.items():
        lut[value] = class_id
    for stem, arr in values.items():
        got = np.asarray(Image.open(out / index.loc[f"seg/img/{stem}", "labelmap"]))
        np.testing.assert_array_equal(got, lut[arr], err_msg=stem)


def test_masks_beside_the_images_with_a_suffix_and_unlabelled_ignore(tmp_path, ingest_image):
    root = tmp_path / "kolektor"  # KolektorSDD2 keeps <stem>_GT.png next to <stem>.png
    ingest_image(root / "10000.png", size=(16, 16))
    ingest_image(root / "10001.png", size=(16, 16))
    arr = _blank()
    arr[2:6, 2:6] = 255
    _mask(root / "10000_GT.png", arr)
    src = Source("masks", root, masks=root, mask_suffix="_GT", mask_values={0: "normal", 255: "Defect"},
                 label_map={"Defect": "scratch"})  # fmt: skip
    assert ingest([src], CLASSES).manifest["label"].tolist() == ["scratch", "normal"]
    src.unlabelled = "ignore"
    res = ingest([src], CLASSES)
    assert res.manifest["id"].tolist() == ["kolektor/10000"] and res.report["counts"]["unlabelled"]["ignored"] == 1


def test_unmapped_value_names_mask_and_value_and_drops_the_image(tmp_path, ingest_image):
    root = tmp_path / "seg"
    _, masks = _dataset(root, ingest_image)
    bad = _blank()
    bad[0, 0], bad[5, 5] = 5, 3
    _mask(masks["b"], bad)
    src = Source("masks", root, images=root / "img", masks=root / "ann", mask_values=VALUES)
    with pytest.raises(AnnotationError) as e:
        ingest([src], CLASSES)
    assert str(e.value) == f"{masks['b']}: mask value(s) 5 not in mask_values (0, 3, 7, 255)"
    res = ingest([src], CLASSES, on_error="skip")
    assert "seg/img/b" not in set(res.manifest["id"])  # dropped, never taken for a normal image
    assert [s["path"] for s in res.report["skipped"]] == [str(masks["b"])]


@pytest.mark.parametrize(
    "make, error, words",
    [
        (lambda p: _mask(p, np.zeros((16, 15))), PairingError, "mask is 15x16 but its image is 16x16"),
        (lambda p: Image.new("RGB", (16, 16), (7, 0, 0)).save(p), AnnotationError, "RGB mask with colours"),
        (lambda p: Image.new("LA", (16, 16)).save(p), AnnotationError, "mask of mode LA"),
        (lambda p: _mask(p.with_suffix(".jpg"), _blank()), AnnotationError, "JPEG mask"),
        (lambda p: _mask(p.with_name("z.png"), _blank()), PairingError, "orphan mask: no image z.*"),
    ],
)
def test_bad_masks_are_one_line_naming_the_mask(tmp_path, ingest_image, make, error, words):
    root = tmp_path / "seg"
    _, masks = _dataset(root, ingest_image)
    masks["b"].unlink()
    make(masks["b"])
    src = Source("masks", root, images=root / "img", masks=root / "ann", mask_values=VALUES)
    with pytest.raises(error) as e:
        ingest([src], CLASSES)
    assert words in str(e.value) and "\n" not in str(e.value)
    assert str(e.value).startswith(str(root / "ann"))


def test_every_file_in_the_masks_folder_must_pair(tmp_path, ingest_image):
    ingest_image(tmp_path / "img" / "a.png", size=(16, 16))
    _mask(tmp_path / "ann" / "a_m.png", _blank())
    _mask(tmp_path / "ann" / "a_m.bmp", _blank())
    _mask(tmp_path / "ann" / "a.png", _blank())
    _mask(tmp_path / "ann" / "_m.png", _blank())  # no stem at all
    src = Source("masks", tmp_path, images=tmp_path / "img", masks=tmp_path / "ann", mask_suffix="_m",
                 mask_values={0: "normal"})  # fmt: skip
    res = ingest([src], CLASSES, on_error="skip")
    assert res.manifest["annotation"].tolist() == [str(tmp_path / "ann" / "a_m.bmp")]  # the first, sorted
    assert [(s["path"], s["problem"]) for s in res.report["skipped"]] == [
        (str(tmp_path / "ann" / "_m.png"), "not a mask name (<image stem>_m.<ext>)"),
        (str(tmp_path / "ann" / "a.png"), "not a mask name (<image stem>_m.<ext>)"),
        (str(tmp_path / "ann" / "a_m.png"), "second mask for image 'a' (first: a_m.bmp)"),
    ]


def test_missing_masks_folder(tmp_path, ingest_image):
    ingest_image(tmp_path / "img" / "a.png")
    with pytest.raises(DataError) as e:
        ingest([Source("masks", tmp_path / "img", masks=tmp_path / "ann", mask_values={0: "normal"})], [])
    assert str(e.value) == f"{tmp_path / 'ann'}: masks folder not found (masks)"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({}, "needs a masks folder"),
        ({"masks": "m"}, "needs mask_values"),
        ({"masks": "m", "mask_values": {0: "normal", 1: "crack"}}, "mask_values.1 -> 'crack' is not a class"),
        ({"masks": "m", "mask_values": {"1": "scratch"}}, "mask_values key '1' is not a pixel value"),
        ({"masks": "m", "mask_values": {-1: "scratch"}}, "mask_values key -1 is not a pixel value"),
        ({"masks": "r", "mask_values": {1: "scratch"}}, "set mask_suffix"),
        ({"format": "mvtec", "mask_values": {1: "scratch"}}, "are for masks sources"),
    ],
)
def test_mask_settings_are_validated_naming_the_source(kwargs, words):
    kwargs = {"format": "masks", **kwargs}
    with pytest.raises(ConfigError) as e:
        ingest([Source(root="r", name="seg", **kwargs)], CLASSES)
    assert str(e.value).startswith("source 'seg': ") and words in str(e.value)


def test_stage_reads_a_masks_source_from_params(tmp_path, monkeypatch, ingest_image):
    import json

    import yaml

    from pipeline.ingest import main

    monkeypatch.chdir(tmp_path)
    _dataset(tmp_path / "seg", ingest_image)
    source = {"format": "masks", "root": "seg", "images": "seg/img", "masks": "seg/ann", "mask_values": VALUES}
    doc = {"ingest": {"sources": [source], "classes": {"scratch": [255, 0, 0], "dent": [0, 0, 255]}, "out": "interim"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    assert main([]) == 0
    report = json.loads((tmp_path / "interim" / "ingest_report.json").read_text())
    assert report["counts"]["by_label"] == {"normal": 2, "scratch": 2, "dent": 1}
    assert len(list((tmp_path / "interim" / "extracted" / "masks").iterdir())) == 4
