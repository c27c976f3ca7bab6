"""Every reader on tiny generated datasets, through ``ingest`` (the tables are what later stages read)."""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
from PIL import Image

from syndgan.data.coco import rle_decode, rle_string_to_counts
from syndgan.data.ingest import Source, ingest
from syndgan.data.labelme import read_labelme
from syndgan.data.maskfolders import read_magnetic_tile, read_mvtec
from syndgan.errors import PairingError


def _regions(result, image_id):
    return result.annotations[result.annotations["image_id"] == image_id].reset_index(drop=True)


def _row(result, image_id):
    rows = result.manifest[result.manifest["id"] == image_id]
    assert len(rows) == 1, image_id
    return rows.iloc[0]


# --------------------------------------------------------------------------- LabelMe


def test_labelme_shapes_backslashes_embedded_and_normal(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    ingest_image(root / "images" / "a.png", size=(40, 30), mode="RGB")
    ingest_labelme(
        root / "ann" / "a.json",
        image_path="..\\images\\a.png",  # Windows LabelMe writes backslashes
        size=(40, 30),
        shapes=[
            ("scratch", [(1, 1), (20, 1), (20, 10)]),
            ("dent", [(30, 20), (25, 12)], "rectangle"),
            ("dent", [(10, 20), (13, 24)], "circle"),  # centre + point on circle: radius 5
        ],
    )
    ingest_image(root / "ann" / "b.png", size=(20, 10))
    ingest_labelme(root / "ann" / "b.json", size=(20, 10))  # no shapes: normal
    buf = io.BytesIO()
    Image.fromarray(np.full((12, 14), 77, np.uint8), "L").save(buf, format="PNG")
    ingest_labelme(
        root / "c.json",
        image_path="missing.png",
        imageData=base64.b64encode(buf.getvalue()).decode(),
        size=(14, 12),
        shapes=[("scratch", [(1, 1), (5, 1), (5, 5), (1, 5)])],
    )
    (root / "notes.json").write_text(json.dumps({"comment": "not a LabelMe file"}))

    res = ingest([Source("labelme", root, name="lm")], ["scratch", "dent"], extract_dir=tmp_path / "x")
    assert sorted(res.manifest["id"]) == ["lm/ann/b", "lm/c", "lm/images/a"]

    a = _row(res, "lm/images/a")
    assert (a["width"], a["height"], a["mode"]) == (40, 30, "RGB")
    assert a["path"] == str(root / "images" / "a.png")
    regs = _regions(res, "lm/images/a")
    assert list(regs["label"]) == ["scratch", "dent", "dent"]
    assert regs.loc[0, "area"] == pytest.approx(19 * 9 / 2)
    assert json.loads(regs.loc[1, "points"]) == [[25, 12], [30, 12], [30, 20], [25, 20]]
    assert (regs.loc[1, "x0"], regs.loc[1, "y0"], regs.loc[1, "x1"], regs.loc[1, "y1"]) == (25, 12, 30, 20)
    circle = json.loads(regs.loc[2, "points"])
    assert len(circle) == 32
    assert all(math.dist(p, (10, 20)) == pytest.approx(5) for p in circle)
    # largest_area: dent (40 + ~78) beats scratch (85.5)
    assert a["label"] == "dent" and a["labels"] == "dent|scratch"

    b = _row(res, "lm/ann/b")
    assert (b["label"], b["labels"]) == ("normal", "")
    assert len(_regions(res, "lm/ann/b")) == 0

    c = _row(res, "lm/c")  # embedded image: extracted, and the manifest points at the copy
    assert c["path"] == str(tmp_path / "x" / "images" / "lm__c.png")
    assert res.files[c["path"]] == buf.getvalue()
    assert (c["width"], c["height"], c["label"]) == (14, 12, "scratch")


def test_labelme_first_rule_flags_and_mask_shape(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    ingest_image(root / "a.png")
    small, big = [(1, 1), (3, 1), (3, 3)], [(5, 5), (20, 5), (20, 15), (5, 15)]
    ingest_labelme(root / "a.json", shapes=[("scratch", small), ("dent", big)])
    ingest_image(root / "f.png")
    ingest_labelme(root / "f.json", flags={"dent": True, "reviewed": True, "scratch": False})
    ingest_image(root / "m.png")
    box = np.zeros((3, 4), np.uint8)
    box[1, 1:3] = 255
    buf = io.BytesIO()
    Image.fromarray(box, "L").save(buf, format="PNG")
    shape = {
        "label": "scratch",
        "points": [[6, 7], [9, 9]],
        "shape_type": "mask",
        "mask": base64.b64encode(buf.getvalue()).decode(),
    }
    ingest_labelme(root / "m.json", shapes=[shape])
    src = Source("labelme", root, name="lm")

    first = ingest([src], ["scratch", "dent"], multi_label="first", extract_dir=tmp_path / "x")
    assert _row(first, "lm/a")["label"] == "scratch"
    largest = ingest([src], ["scratch", "dent"], multi_label="largest_area", extract_dir=tmp_path / "x")
    assert _row(largest, "lm/a")["label"] == "dent"
    # a flag naming a class labels the image; other flags are metadata
    assert (_row(largest, "lm/f")["label"], _row(largest, "lm/f")["labels"]) == ("dent", "dent")
    m = _regions(largest, "lm/m").iloc[0]
    assert m["shape"] == "mask" and m["mask_path"] == str(tmp_path / "x" / "masks" / "lm__m__0.png")
    decoded = np.asarray(Image.open(io.BytesIO(largest.files[m["mask_path"]]))) > 127
    assert decoded.shape == (16, 24) and decoded.sum() == 2 and decoded[8, 7] and decoded[8, 8]
    assert (m["x0"], m["y0"], m["x1"], m["y1"], m["area"]) == (7, 8, 9, 9, 2)


def test_labelme_reader_is_sorted_and_skips_hidden_folders(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "lm"
    for name in ("z", "a", "m"):
        ingest_image(root / f"{name}.png")
        ingest_labelme(root / f"{name}.json")
    (root / ".ipynb_checkpoints").mkdir()
    ingest_labelme(root / ".ipynb_checkpoints" / "a.json", image_path="../a.png")
    recs = read_labelme(root)
    assert [r.path.name for r in recs] == ["a.png", "m.png", "z.png"]


# --------------------------------------------------------------------------- COCO


def test_rle_string_decoding_matches_pycocotools():
    # strings produced by pycocotools.mask.encode for these masks
    m = np.zeros((7, 9), bool)
    m[1:5, 2:7] = m[6, 8] = m[0, 0] = True
    assert (rle_decode(rle_string_to_counts("01>3E0000000<M"), 7, 9) == m).all()
    m2 = np.zeros((40, 50), bool)
    m2[5:30, 10:45] = True
    m2[12:20, 20:25] = False
    s = "e<i0?000000000000000000^OI37MI37MI37MI37MI37?00000000000000000000000000000000000000S6"
    assert (rle_decode(rle_string_to_counts(s), 40, 50) == m2).all()
    assert rle_string_to_counts("3452M") == [3, 4, 5, 6, 2]
    with pytest.raises(ValueError, match="add up"):
        rle_decode([3, 4], 4, 5)


def test_coco_polygons_rle_bbox_and_unannotated(tmp_path, ingest_image):
    root = tmp_path / "coco"
    ingest_image(root / "images" / "a.png", size=(9, 7))  # found via the images/ fallback
    ingest_image(root / "b.png", size=(24, 16))
    ingest_image(root / "sub" / "c.png", size=(24, 16))
    ingest_image(root / "d.png", size=(24, 16))
    doc = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 9, "height": 7},
            {"id": 2, "file_name": "b.png", "width": 24, "height": 16},
            {"id": 3, "file_name": "sub/c.png", "width": 24, "height": 16},
            {"id": 4, "file_name": "d.png", "width": 24, "height": 16},
        ],
        "categories": [{"id": 7, "name": "pit"}, {"id": 8, "name": "crack"}],
        "annotations": [
            {
                "id": 10,
                "image_id": 1,
                "category_id": 7,
                "iscrowd": 1,
                "segmentation": {"size": [7, 9], "counts": "01>3E0000000<M"},
            },
            {
                "id": 11,
                "image_id": 2,
                "category_id": 8,
                "segmentation": [[1, 1, 9, 1, 9, 5], [12, 2, 20, 2, 20, 12, 12, 12]],
            },
            {
                "id": 12,
                "image_id": 2,
                "category_id": 7,
                "iscrowd": 1,
                "segmentation": {"size": [16, 24], "counts": [17, 3, 13, 3, 348]},
            },
            {"id": 13, "image_id": 3, "category_id": 7, "segmentation": [], "bbox": [2, 3, 4, 5]},
        ],
    }
    (root / "ann.json").write_text(json.dumps(doc))
    res = ingest([Source("coco", root, name="c", annotations="ann.json")], ["crack", "pit"], extract_dir=tmp_path / "x")
    assert sorted(res.manifest["id"]) == ["c/b", "c/d", "c/images/a", "c/sub/c"]

    a = _regions(res, "c/images/a").iloc[0]
    assert a["shape"] == "mask" and a["area"] == 22
    expected = np.zeros((7, 9), bool)
    expected[1:5, 2:7] = expected[6, 8] = expected[0, 0] = True
    assert ((np.asarray(Image.open(io.BytesIO(res.files[a["mask_path"]]))) > 127) == expected).all()

    b = _regions(res, "c/b")
    assert list(b["shape"]) == ["polygon", "polygon", "mask"]
    assert list(b["label"]) == ["crack", "crack", "pit"]
    rle = b.iloc[2]  # column-major runs: flat 17-19 and 33-35 are rows 1-3 of columns 1 and 2
    assert (rle["x0"], rle["y0"], rle["x1"], rle["y1"], rle["area"]) == (1, 1, 3, 4, 6)
    assert _row(res, "c/b")["label"] == "crack"

    c = _regions(res, "c/sub/c").iloc[0]  # bbox only: a rectangle
    assert json.loads(c["points"]) == [[2, 3], [6, 3], [6, 8], [2, 8]]
    assert _row(res, "c/d")["label"] == "normal"


# --------------------------------------------------------------------------- CVAT


def test_cvat_polygon_box_ellipse_mask_and_tag(tmp_path, ingest_image):
    root = tmp_path / "cvat"
    ingest_image(root / "images" / "f0.png", size=(30, 20))
    ingest_image(root / "f1.png", size=(30, 20))
    ingest_image(root / "f2.png", size=(30, 20))
    xml = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <image id="0" name="f0.png" width="30" height="20">
    <polygon label="crack" occluded="0" points="1.0,1.0;10.0,1.0;10.0,6.0" z_order="0"/>
    <box label="dent" occluded="0" xtl="12" ytl="4" xbr="22" ybr="14" z_order="0"/>
  </image>
  <image id="1" name="f1.png" width="30" height="20">
    <ellipse label="dent" cx="15" cy="10" rx="6" ry="3" occluded="0"/>
    <mask label="crack" rle="1,2,2,1" left="3" top="4" width="3" height="2" occluded="0"/>
  </image>
  <image id="2" name="f2.png" width="30" height="20">
    <tag label="dent"/>
  </image>
</annotations>"""
    (root / "annotations.xml").write_text(xml)
    res = ingest([Source("cvat", root, annotations="annotations.xml")], ["crack", "dent"], extract_dir=tmp_path / "x")
    assert sorted(res.manifest["id"]) == ["cvat/f1", "cvat/f2", "cvat/images/f0"]
    f0 = _regions(res, "cvat/images/f0")
    assert json.loads(f0.loc[1, "points"]) == [[12, 4], [22, 4], [22, 14], [12, 14]]
    assert _row(res, "cvat/images/f0")["label"] == "dent"  # 100 px box beats the 22.5 px triangle

    f1 = _regions(res, "cvat/f1")
    assert len(json.loads(f1.loc[0, "points"])) == 32
    assert f1.loc[0, "area"] == pytest.approx(math.pi * 18, rel=0.01)
    mask = np.asarray(Image.open(io.BytesIO(res.files[f1.loc[1, "mask_path"]]))) > 127
    expected = np.zeros((20, 30), bool)
    expected[4, 4:6] = expected[5, 5] = True  # row-major in the 3x2 box: 0 1 1 / 0 0 1
    assert (mask == expected).all()
    assert (_row(res, "cvat/f2")["label"], len(_regions(res, "cvat/f2"))) == ("dent", 0)


# --------------------------------------------------------------------------- MVTec AD


def _mvtec(root, ingest_image, ingest_mask):
    cat = root / "screw"
    for i in range(3):
        ingest_image(cat / "train" / "good" / f"{i:03d}.png")
    ingest_image(cat / "test" / "good" / "000.png")
    for i in range(2):
        ingest_image(cat / "test" / "scratch_head" / f"{i:03d}.png")
        ingest_mask(cat / "ground_truth" / "scratch_head" / f"{i:03d}_mask.png", boxes=[(2, 3, 6, 5)])
    return cat


def test_mvtec_layout(tmp_path, ingest_image, ingest_mask):
    root = tmp_path / "mvtec"
    _mvtec(root, ingest_image, ingest_mask)
    src = Source("mvtec", root, label_map={"scratch_head": "scratch"})
    res = ingest([src], ["scratch"])
    assert len(res.manifest) == 6
    assert res.report["counts"]["by_label"] == {"normal": 4, "scratch": 2}
    r = _regions(res, "mvtec/screw/test/scratch_head/001").iloc[0]
    assert r["mask_path"] == str(root / "screw" / "ground_truth" / "scratch_head" / "001_mask.png")
    assert (r["x0"], r["y0"], r["x1"], r["y1"], r["area"], r["mask_threshold"]) == (2, 3, 6, 5, 8, 127)
    # a single category folder works as the root too
    assert (
        len(ingest([Source("mvtec", root / "screw", label_map={"scratch_head": "scratch"})], ["scratch"]).manifest) == 6
    )


def test_mvtec_missing_and_orphan_masks(tmp_path, ingest_image, ingest_mask):
    root = tmp_path / "mvtec"
    cat = _mvtec(root, ingest_image, ingest_mask)
    (cat / "ground_truth" / "scratch_head" / "001_mask.png").unlink()
    ingest_mask(cat / "ground_truth" / "scratch_head" / "007_mask.png")
    with pytest.raises(PairingError) as e:
        read_mvtec(root)
    assert "001.png" in str(e.value) and "no mask" in str(e.value) and "\n" not in str(e.value)
    errors = []
    recs = read_mvtec(root, errors.append)
    assert len(recs) == 5
    assert [type(x) for x in errors] == [PairingError, PairingError]
    assert errors[1].path.endswith("007_mask.png") and "orphan" in errors[1].problem


# --------------------------------------------------------------------------- Magnetic Tile


def _tiles(root, ingest_image, ingest_mask):
    for cls, n in (("Free", 3), ("Crack", 2), ("Uneven", 2)):
        for i in range(n):
            img = ingest_image(root / f"MT_{cls}" / "Imgs" / f"exp{i % 2}_num_{cls}{i}.jpg", size=(20, 12))
            boxes = [(3, 2, 9, 6)] if cls != "Free" and not (cls == "Uneven" and i == 0) else []
            ingest_mask(img.with_suffix(".png"), size=(20, 12), boxes=boxes, value=200)


def test_magnetic_tile_layout_and_empty_defect_mask(tmp_path, ingest_image, ingest_mask):
    root = tmp_path / "mt"
    _tiles(root, ingest_image, ingest_mask)
    src = Source("magnetic_tile", root, label_map={"Crack": "crack", "Uneven": "uneven"})
    res = ingest([src], ["crack", "uneven"])
    assert res.report["counts"]["by_label"] == {"normal": 3, "crack": 2, "uneven": 2}
    # the Uneven image with an empty mask keeps its folder label, with no region rows
    empty = _row(res, "mt/MT_Uneven/Imgs/exp0_num_Uneven0")
    assert (empty["label"], empty["labels"]) == ("uneven", "uneven")
    assert len(_regions(res, empty["id"])) == 0
    assert res.report["counts"]["defect_images_without_regions"] == 1
    assert len(res.annotations) == 3 and set(res.annotations["shape"]) == {"mask"}
    assert (res.manifest["mode"] == "L").all()


def test_magnetic_tile_pairing_errors(tmp_path, ingest_image, ingest_mask):
    root = tmp_path / "mt"
    _tiles(root, ingest_image, ingest_mask)
    (root / "MT_Crack" / "Imgs" / "exp1_num_Crack1.png").unlink()
    ingest_mask(root / "MT_Free" / "Imgs" / "exp9_num_9.png", size=(20, 12))
    with pytest.raises(PairingError, match=r"exp1_num_Crack1\.jpg: image has no mask exp1_num_Crack1\.png$"):
        read_magnetic_tile(root)
    errors = []
    assert len(read_magnetic_tile(root, errors.append)) == 6
    assert {e.path.rsplit("/", 1)[1] for e in errors} == {"exp1_num_Crack1.jpg", "exp9_num_9.png"}
