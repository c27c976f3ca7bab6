"""Every kind of bad input: one-line error naming the file (on_error="fail"), or listed and dropped ("skip")."""

from __future__ import annotations

import json
import os
import re
import shutil
from types import SimpleNamespace

import pytest

from syndgan.data.ingest import Source, ingest
from syndgan.errors import (
    AnnotationError,
    ConfigError,
    DataError,
    DuplicateImageError,
    ImageError,
    PairingError,
    PathEscapeError,
)

SQUARE = [(2, 2), (10, 2), (10, 8), (2, 8)]


@pytest.fixture
def fx(tmp_path, ingest_image, ingest_mask, ingest_labelme):
    """A LabelMe root with one good image ``good.png``; each case adds one bad one."""
    root = tmp_path / "ds"
    ingest_image(root / "good.png")
    ingest_labelme(root / "good.json", shapes=[("scratch", SQUARE)])
    return SimpleNamespace(tmp=tmp_path, root=root, image=ingest_image, mask=ingest_mask, labelme=ingest_labelme)


def _labelme(f, **kw):
    return Source("labelme", f.root, name="ds", **kw)


# Each case: (build(fx) -> Source, error class, file named, problem text). The bad file is "bad.*".
def corrupt(f):
    (f.root / "bad.png").write_bytes(b"this is not a png at all" * 4)
    f.labelme(f.root / "bad.json")
    return _labelme(f), ImageError, "bad.png", "not an image"


def truncated(f):
    data = f.image(f.tmp / "full.png", size=(64, 64)).read_bytes()
    (f.root / "bad.png").write_bytes(data[: len(data) // 2])
    f.labelme(f.root / "bad.json", size=(64, 64))
    return _labelme(f), ImageError, "bad.png", "corrupt or truncated"


def truncated_jpeg(f):
    data = f.image(f.tmp / "full.jpg", size=(64, 64)).read_bytes()
    (f.root / "bad.jpg").write_bytes(data[: len(data) // 2])
    f.labelme(f.root / "bad.json", image_path="bad.jpg", size=(64, 64))
    return _labelme(f), ImageError, "bad.jpg", "corrupt or truncated"


def json_syntax(f):
    f.image(f.root / "bad.png")
    (f.root / "bad.json").write_text('{"shapes": [}')
    return _labelme(f), AnnotationError, "bad.json", "invalid JSON"


def two_points(f):
    f.image(f.root / "bad.png")
    f.labelme(f.root / "bad.json", shapes=[("scratch", [(1, 1), (5, 5), (5, 5)])])
    return _labelme(f), AnnotationError, "bad.json", "2 distinct points"


def outside(f):
    f.image(f.root / "bad.png")
    f.labelme(f.root / "bad.json", shapes=[("scratch", [(1, 1), (40, 1), (40, 8)])])  # image is 24 wide
    return _labelme(f), AnnotationError, "bad.json", r"point \(40, 1\) is outside the 24x16 image"


def self_intersecting(f):
    f.image(f.root / "bad.png")
    f.labelme(f.root / "bad.json", shapes=[("scratch", [(1, 1), (10, 10), (10, 1), (1, 10)])])  # bow tie
    return _labelme(f), AnnotationError, "bad.json", "self-intersecting"


def unknown_class(f):
    f.image(f.root / "bad.png")
    f.labelme(f.root / "bad.json", shapes=[("scrach", SQUARE)])
    return _labelme(f), AnnotationError, "bad.json", "unknown class 'scrach'"


def escape_dotdot(f):
    f.image(f.tmp / "outside.png")
    f.labelme(f.root / "bad.json", image_path="../outside.png")
    return _labelme(f), PathEscapeError, "bad.json", "outside the dataset root"


def escape_absolute(f):
    path = f.image(f.tmp / "outside.png")
    f.labelme(f.root / "bad.json", image_path=str(path))
    return _labelme(f), PathEscapeError, "bad.json", "absolute path"


def escape_symlink(f):
    os.symlink(f.image(f.tmp / "outside.png"), f.root / "bad.png")
    f.labelme(f.root / "bad.json")
    return _labelme(f), PathEscapeError, "bad.json", "outside the dataset root"


def escape_coco(f):
    shutil.rmtree(f.root)
    f.image(f.root / "good.png")
    f.image(f.tmp / "outside.png")
    doc = {
        "images": [{"id": 1, "file_name": "good.png"}, {"id": 2, "file_name": "..\\outside.png"}],
        "annotations": [],
        "categories": [],
    }
    (f.root / "coco.json").write_text(json.dumps(doc))
    return Source("coco", f.root, annotations="coco.json"), PathEscapeError, "coco.json", "outside.png"


def escape_cvat(f):
    shutil.rmtree(f.root)
    f.image(f.root / "good.png")
    f.image(f.tmp / "outside.png")
    xml = '<annotations><image id="0" name="good.png"/><image id="1" name="/etc/outside.png"/></annotations>'
    (f.root / "a.xml").write_text(xml)
    return Source("cvat", f.root, annotations="a.xml"), PathEscapeError, "a.xml", "absolute path '/etc/outside.png'"


def coco_unknown_category(f):
    shutil.rmtree(f.root)
    f.image(f.root / "good.png")
    f.image(f.root / "bad.png")
    doc = {
        "images": [{"id": 1, "file_name": "good.png"}, {"id": 2, "file_name": "bad.png"}],
        "annotations": [
            {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 9, 1, 9, 9]]},
            {"id": 6, "image_id": 2, "category_id": 3, "segmentation": [[1, 1, 9, 1, 9, 9]]},
        ],
        "categories": [{"id": 1, "name": "scratch"}],
    }
    (f.root / "coco.json").write_text(json.dumps(doc))
    src = Source("coco", f.root, annotations="coco.json")
    return src, AnnotationError, "coco.json", "image 'bad.png': annotation id 6: category_id 3 is not in 'categories'"


def cvat_bad_polygon(f):
    shutil.rmtree(f.root)
    f.image(f.root / "good.png")
    f.image(f.root / "bad.png")
    xml = (
        '<annotations><image id="0" name="good.png" width="24" height="16"/>'
        '<image id="1" name="bad.png" width="24" height="16"><polygon label="scratch" points="1,1;9,1"/></image>'
        "</annotations>"
    )
    (f.root / "a.xml").write_text(xml)
    src = Source("cvat", f.root, annotations="a.xml")
    return src, AnnotationError, "a.xml", r"image 'bad.png': <polygon> 1 \('scratch'\): polygon has 2 distinct points"


def size_disagrees(f):
    f.image(f.root / "bad.png", size=(30, 20))
    f.labelme(f.root / "bad.json", size=(24, 16))
    return _labelme(f), AnnotationError, "bad.json", "declares a 24x16 image but the image is 30x20"


def over_pixel_limit(f):
    f.image(f.root / "bad.png", size=(100, 100))
    f.labelme(f.root / "bad.json", size=(100, 100))
    return _labelme(f), ImageError, "bad.png", "10000 pixels, over the limit of 5000"


def duplicate(f):
    shutil.copy(f.root / "good.png", f.root / "zz_copy.png")
    f.labelme(f.root / "zz_copy.json", shapes=[("scratch", SQUARE)])
    return _labelme(f), DuplicateImageError, "zz_copy.png", "same image as .*good.png"


def mask_mismatch(f):
    shutil.rmtree(f.root)
    for cls in ("Free", "Crack"):
        img = f.image(f.root / f"MT_{cls}" / "Imgs" / f"ok_{cls}.jpg", size=(20, 12))
        f.mask(img.with_suffix(".png"), size=(20, 12), boxes=[(1, 1, 5, 5)] if cls == "Crack" else [])
    f.image(f.root / "MT_Crack" / "Imgs" / "bad.jpg", size=(20, 12))
    f.mask(f.root / "MT_Crack" / "Imgs" / "bad.png", size=(21, 12), boxes=[(1, 1, 5, 5)])
    src = Source("magnetic_tile", f.root, label_map={"Crack": "scratch"})
    return src, PairingError, "bad.png", "mask is 21x12 but its image is 20x12"


def same_image_twice(f):
    f.image(f.root / "dup.png")
    f.labelme(f.root / "dup.json")
    f.labelme(f.root / "another.json", image_path="dup.png")  # kept: sorts first; dup.json is dropped
    return _labelme(f), DuplicateImageError, "dup.json", "annotates the same image 'dup.png' as .*another.json"


CASES = [
    corrupt,
    truncated,
    truncated_jpeg,
    json_syntax,
    two_points,
    outside,
    self_intersecting,
    unknown_class,
    escape_dotdot,
    escape_absolute,
    escape_symlink,
    escape_coco,
    escape_cvat,
    coco_unknown_category,
    cvat_bad_polygon,
    size_disagrees,
    over_pixel_limit,
    duplicate,
    mask_mismatch,
    same_image_twice,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input_fails_with_one_line_naming_the_file(fx, case):
    source, cls, name, problem = case(fx)
    with pytest.raises(cls) as info:
        ingest([source], ["scratch"], max_pixels=5000)
    msg = str(info.value)
    assert "\n" not in msg
    assert info.value.path.endswith(name), msg
    assert msg.startswith(info.value.path + ": ")
    assert re.search(problem, msg), msg


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_skip_mode_drops_and_reports(fx, case):
    source, cls, name, problem = case(fx)
    res = ingest([source], ["scratch"], max_pixels=5000, on_error="skip")
    skipped = res.report["skipped"]
    assert skipped[0]["path"].endswith(name) and skipped[0]["error"] == cls.__name__
    # an image whose annotation file was rejected is left out too, and listed as such (never a normal)
    for extra in skipped[1:]:
        assert extra["path"].endswith("bad.png") and extra["problem"].startswith("left out: its annotation"), skipped
        assert extra["problem"].endswith(f"{name} was rejected"), skipped
    assert len(skipped) <= 2 and res.report["counts"]["skipped"] == len(skipped)
    kept = set(res.manifest["path"])
    assert not any(p.endswith(("bad.png", "bad.jpg", "zz_copy.png")) for p in kept)
    assert any(p.endswith(("good.png", "ok_Crack.jpg")) for p in kept)


def test_orphan_annotation_file_in_skip_mode_keeps_the_rest(fx):
    (fx.root / "bad.json").write_text("not json")
    (fx.root / "other.json").write_text(json.dumps({"something": "else"}))  # not LabelMe: ignored
    res = ingest([_labelme(fx)], ["scratch"], on_error="skip")
    assert list(res.manifest["id"]) == ["ds/good"]
    assert [s["path"].rsplit("/", 1)[1] for s in res.report["skipped"]] == ["bad.json"]


def test_first_error_is_deterministic(fx):
    for k in range(6):
        (fx.root / f"bad{k}.png").write_bytes(b"junk")
        fx.labelme(fx.root / f"bad{k}.json")
    with pytest.raises(ImageError, match=r"bad0\.png: "):
        ingest([_labelme(fx)], ["scratch"], workers=4)


def test_nothing_usable_and_bad_arguments(fx):
    (fx.root / "good.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no usable images"):
        ingest([_labelme(fx)], ["scratch"], on_error="skip")
    with pytest.raises(ConfigError, match="label_map"):
        ingest([_labelme(fx, label_map={"x": "nope"})], ["scratch"])
    with pytest.raises(ConfigError, match="group_pattern"):
        ingest([_labelme(fx, group_pattern="(")], ["scratch"])
    with pytest.raises(ConfigError, match="two sources are named 'ds'"):
        ingest([_labelme(fx), _labelme(fx)], ["scratch"])
    with pytest.raises(ConfigError, match="normal"):
        ingest([_labelme(fx)], ["normal"])
    with pytest.raises(DataError, match="dataset root not found"):
        ingest([Source("mvtec", fx.tmp / "nowhere")], ["scratch"])


def test_pil_pixel_limit_is_restored(fx):
    from PIL import Image

    before = Image.MAX_IMAGE_PIXELS
    over_pixel_limit(fx)
    with pytest.raises(ImageError):
        ingest([_labelme(fx)], ["scratch"], max_pixels=5000)
    assert Image.MAX_IMAGE_PIXELS == before


@pytest.mark.parametrize(
    "bad_doc",
    [
        {"shapes": [{"label": "scratch", "points": [[float("nan"), 1], [3, 4], [5, 1]]}]},
        {"shapes": {"not": "a list"}},
        '{"version": "5.4.1", "imagePath": "..\\\\photos\\\\IMG_0042.png", "shapes": [{"label": "scr',
    ],
    ids=["nan_points", "shapes_not_a_list", "cut_short"],
)
def test_skip_mode_never_turns_a_rejected_annotation_into_a_normal(fx, bad_doc):
    """The JSON's stem differs from its image's: the image must not be picked up as unlabelled (normal)."""
    fx.image(fx.root / "photos" / "IMG_0042.png")
    if isinstance(bad_doc, dict):
        fx.labelme(fx.root / "labels" / "defect_17.json", image_path="../photos/IMG_0042.png")
        doc = json.loads((fx.root / "labels" / "defect_17.json").read_text())
        doc.update(bad_doc)
        (fx.root / "labels" / "defect_17.json").write_text(json.dumps(doc))
    else:
        (fx.root / "labels").mkdir()
        (fx.root / "labels" / "defect_17.json").write_text(bad_doc)
    fx.image(fx.root / "photos" / "IMG_0043.png")  # no JSON at all: a real unlabelled normal
    res = ingest([_labelme(fx)], ["scratch"], on_error="skip")
    labels = dict(zip(res.manifest["id"], res.manifest["label"], strict=True))
    assert labels == {"ds/good": "scratch", "ds/photos/IMG_0043": "normal"}, labels
    paths = [s["path"].rsplit("/", 2)[1:] for s in res.report["skipped"]]
    assert ["labels", "defect_17.json"] in paths
    left = next(s for s in res.report["skipped"] if s["path"].endswith("IMG_0042.png"))  # listed as left out
    assert "defect_17.json was rejected" in left["problem"]
    with pytest.raises(DataError, match="defect_17.json"):  # fail mode: refused on the JSON itself
        ingest([_labelme(fx)], ["scratch"])
