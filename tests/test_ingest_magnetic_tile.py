"""The real Magnetic Tile dataset (shared/datasets/magnetic-tile), when it is present."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from syndgan.data.ingest import Source, ingest

ROOT = next(
    (
        p
        for p in (
            Path(__file__).resolve().parents[2] / "shared/datasets/magnetic-tile",
            Path("/work/shared/datasets/magnetic-tile"),
        )
        if p.is_dir()
    ),
    None,
)
CLASSES = ["blowhole", "break", "crack", "fray", "uneven"]


@pytest.mark.skipif(ROOT is None, reason="magnetic-tile dataset not present")
def test_ingest_magnetic_tile():
    source = Source("magnetic_tile", ROOT, name="mt", label_map={c.capitalize(): c for c in CLASSES})
    t0 = time.perf_counter()
    res = ingest([source], CLASSES, seed=0)
    seconds = time.perf_counter() - t0
    counts = res.report["counts"]
    assert counts["by_label"] == {"normal": 952, "blowhole": 115, "break": 85, "crack": 57, "fray": 32, "uneven": 103}
    assert counts["images"] == 1344 and res.manifest["sha256"].is_unique and counts["skipped"] == 0
    assert (res.manifest["mode"] == "L").all()
    # every defect image has one mask region, except the 4 Uneven images whose masks are empty
    assert counts["defect_images_without_regions"] == 4
    assert len(res.annotations) == 392 - 4 and (res.annotations["area"] > 0).all()
    without = set(res.manifest.loc[res.manifest["label"] != "normal", "id"]) - set(res.annotations["image_id"])
    assert {i.split("/")[1] for i in without} == {"MT_Uneven"}
    # every class is in every split, in about the asked proportions
    for label, n in counts["by_label"].items():
        per_split = [counts["by_split_label"][s][label] for s in ("train", "val", "test")]
        assert min(per_split) >= 1 and abs(per_split[0] / n - 0.7) < 0.05, (label, per_split)
    assert seconds < 30, f"ingest took {seconds:.1f} s"
