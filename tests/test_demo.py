import json

import numpy as np
from PIL import Image

from syndgan.data.demo import CLASSES, ILLUMINATIONS, DemoSettings, generate_demo, make_part, plan_labels
from syndgan.data.rasterize import Region, rasterize_labelmap


def test_demo_is_deterministic_and_labelme(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    sa = generate_demo(a, DemoSettings(seed=3, parts=8, resolution=64, defect_fraction=0.5))
    generate_demo(b, DemoSettings(seed=3, parts=8, resolution=64, defect_fraction=0.5))
    assert sa["images"] == 32
    for f in sorted(a.iterdir()):
        assert f.read_bytes() == (b / f.name).read_bytes(), f.name
    doc = json.loads((a / "part0000_bright.json").read_text())
    assert doc["imagePath"] == "part0000_bright.png"
    assert (doc["imageWidth"], doc["imageHeight"]) == (64, 64)
    assert all(s["shape_type"] == "polygon" and s["label"] in CLASSES for s in doc["shapes"])


def test_demo_other_seed_differs(tmp_path):
    p0 = make_part(0, 1, 64, "bump")
    p1 = make_part(1, 1, 64, "bump")
    assert not np.array_equal(p0.images["bright"], p1.images["bright"])


def test_demo_class_balance_and_fraction():
    labels = plan_labels(0, 100, 0.18)
    assert sum(lbl is not None for lbl in labels) == 18
    assert {lbl for lbl in labels if lbl} == set(CLASSES)


def test_demo_defects_are_visible_where_annotated():
    # The rendered defect changes pixels inside its polygon relative to the same part without it.
    for cls in CLASSES:
        part = make_part(0, 7, 128, cls)
        clean = make_part(0, 7, 128, None)
        assert part.defects and all(d.label == cls for d in part.defects)
        lm = rasterize_labelmap([Region(1, polygon=d.polygon) for d in part.defects], 128, 128)
        inside = lm > 0
        diff = np.abs(part.images["dark"].astype(int) - clean.images["dark"].astype(int)).max(-1)
        assert diff[inside].mean() > 5 * max(diff[~inside].mean(), 0.5), cls


def test_demo_four_illuminations_same_part(tmp_path):
    generate_demo(tmp_path, DemoSettings(seed=0, parts=4, resolution=64, defect_fraction=1.0))
    for i in range(4):
        shapes = [json.loads((tmp_path / f"part{i:04d}_{light}.json").read_text())["shapes"] for light in ILLUMINATIONS]
        assert all(s == shapes[0] for s in shapes)  # one annotation per part, shared by its illuminations
        imgs = [np.asarray(Image.open(tmp_path / f"part{i:04d}_{light}.png")) for light in ILLUMINATIONS]
        assert len({im.tobytes() for im in imgs}) == 4


def test_smallest_dust_is_at_least_min_px():
    for idx in range(20):
        part = make_part(5, idx, 256, "dust", min_defect_px=4)
        for d in part.defects:
            xs, ys = zip(*d.polygon, strict=True)
            assert max(max(xs) - min(xs), max(ys) - min(ys)) >= 3.0
