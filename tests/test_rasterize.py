import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline.rasterize import rasterize_dataset
from syndgan.data.rasterize import Region, colorize, rasterize_labelmap
from syndgan.errors import PairingError

CLASSES = [{"name": "bump", "id": 1, "color": [255, 0, 0]}, {"name": "dust", "id": 2, "color": [0, 0, 255]}]


def square(x, y, s):
    return [(x, y), (x + s, y), (x + s, y + s), (x, y + s)]


@pytest.mark.parametrize("size", [(2440, 2040), (1024, 1024), (300, 200)])
@pytest.mark.parametrize("res", [32, 64, 128])
def test_4px_defect_survives_resizing(size, res):
    w, h = size
    for x, y in [(0, 0), (w - 5, h - 5), (w // 3 + 1, h // 2 + 2)]:
        lm = rasterize_labelmap([Region(1, polygon=square(x, y, 4))], w, h, (res, res))
        assert (lm == 1).sum() >= 1, (x, y)


def test_large_region_area_is_preserved():
    lm = rasterize_labelmap([Region(2, polygon=square(0, 0, 512))], 1024, 1024, (64, 64))
    assert (lm == 2).sum() == 32 * 32
    assert set(np.unique(lm)) == {0, 2}


def test_overlap_larger_coverage_wins_and_tiny_defect_kept():
    big = Region(1, polygon=square(0, 0, 1000))
    tiny = Region(2, polygon=square(500, 500, 4))
    lm = rasterize_labelmap([big, tiny], 1000, 1000, (50, 50))
    assert (lm == 2).sum() == 1 and (lm == 1).sum() == 2499


def test_colorize_paints_class_colours_on_black():
    lm = np.array([[0, 1], [2, 1]], np.uint8)
    palette = {c["id"]: c["color"] for c in CLASSES}
    rgb = colorize(lm, palette)
    assert rgb.shape == (2, 2, 3) and tuple(rgb[0, 1]) == (255, 0, 0) and tuple(rgb[0, 0]) == (0, 0, 0)
    assert tuple(rgb[1, 0]) == tuple(palette[2]) and tuple(rgb[1, 1]) == (255, 0, 0)


def test_soft_mask_threshold_and_mismatch(tmp_path):
    m = np.zeros((20, 30), np.uint8)
    m[5:10, 5:10] = 200
    m[12:15, 12:15] = 100  # soft edge below threshold
    Image.fromarray(m).save(tmp_path / "m.png")
    lm = rasterize_labelmap([Region(1, mask_path=tmp_path / "m.png")], 30, 20)
    assert (lm == 1).sum() == 25
    with pytest.raises(PairingError, match="m.png"):
        rasterize_labelmap([Region(1, mask_path=tmp_path / "m.png")], 31, 20)


def test_rasterize_dataset_writes_contract(tmp_path):
    img_path = tmp_path / "a.png"
    Image.fromarray(np.full((40, 60), 128, np.uint8)).save(img_path)
    manifest = pd.DataFrame(
        [
            dict(
                id="src/a",
                source="src",
                path=str(img_path),
                sha256="x",
                width=60,
                height=40,
                mode="L",
                label="dust",
                labels="dust",
                split="train",
                group="a",
            ),
        ]
    )
    ann = pd.DataFrame(
        [
            dict(
                image_id="src/a",
                label="dust",
                shape="polygon",
                points=json.dumps(square(10, 10, 4)),
                mask_path="",
                mask_threshold=127,
                x0=10,
                y0=10,
                x1=14,
                y1=14,
                area=16.0,
            )
        ]
    )
    out = tmp_path / "processed"
    info = rasterize_dataset(manifest, ann, CLASSES, out, resolution=16)
    assert info["channels"] == 1 and info["resolution"] == 16
    idx = pd.read_parquet(out / "index.parquet")
    assert list(idx.columns) == ["id", "label", "labels", "split", "group", "image", "colormap", "labelmap"]
    row = idx.iloc[0]
    assert row["image"] == "images/src__a.png"
    img = Image.open(out / row["image"])
    assert img.size == (16, 16) and img.mode == "L"
    lm = np.asarray(Image.open(out / row["labelmap"]))
    assert (lm == 2).sum() >= 1 and set(np.unique(lm)) <= {0, 2}
    cm = np.asarray(Image.open(out / row["colormap"]))
    assert (cm[lm == 2] == [0, 0, 255]).all()
    assert json.loads((out / "dataset.json").read_text())["classes"][1]["name"] == "dust"


def test_failed_rasterize_keeps_previous_output(tmp_path):
    out = tmp_path / "processed"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    manifest = pd.DataFrame(
        [
            dict(
                id="s/a",
                source="s",
                path=str(tmp_path / "missing.png"),
                sha256="x",
                width=4,
                height=4,
                mode="L",
                label="normal",
                labels="",
                split="train",
                group="a",
            )
        ]
    )
    ann = pd.DataFrame(columns=["image_id", "label", "shape", "points", "mask_path", "mask_threshold"])
    with pytest.raises(Exception, match="missing.png"):
        rasterize_dataset(manifest, ann, CLASSES, out, resolution=8, workers=1)
    assert (out / "keep.txt").read_text() == "previous run"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
