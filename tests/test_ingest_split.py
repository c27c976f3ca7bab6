"""Splitting (deterministic, stratified, group-aware, order-independent) and polygon geometry."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from syndgan.data import polygons
from syndgan.data.ingest import Source, assign_splits, group_label, ingest, split_counts

FRACTIONS = (0.7, 0.1, 0.2)


def _dataset(n_groups: dict[str, int], per_group: int = 2):
    groups, labels = [], []
    for label, n in n_groups.items():
        for g in range(n):
            for _ in range(per_group):
                groups.append(f"{label}-{g:03d}")
                labels.append(label)
    return groups, labels


@pytest.mark.parametrize(
    "n, fractions, expected",
    [
        (10, FRACTIONS, (7, 1, 2)),
        (3, FRACTIONS, (1, 1, 1)),  # >= 3 groups: one each in val and test
        (4, (0.1, 0.45, 0.45), (1, 1, 2)),  # rounding gives val 2 + test 2: val gives one back to train
        (2, FRACTIONS, (2, 0, 0)),
        (1, FRACTIONS, (1, 0, 0)),
        (5, (0.8, 0.0, 0.2), (4, 0, 1)),
        (0, FRACTIONS, (0, 0, 0)),
    ],
)
def test_split_counts(n, fractions, expected):
    got = split_counts(n, fractions)
    assert got == expected and sum(got) == n


def test_splits_are_stratified_group_aware_and_deterministic():
    groups, labels = _dataset({"normal": 50, "crack": 12, "pit": 3, "rare": 2})
    splits = assign_splits(groups, labels, FRACTIONS, seed=3, class_order=["crack", "pit", "rare"])
    assert splits == assign_splits(groups, labels, FRACTIONS, seed=3, class_order=["crack", "pit", "rare"])
    by_group = defaultdict(set)
    for g, s in zip(groups, splits, strict=True):
        by_group[g].add(s)
    assert all(len(s) == 1 for s in by_group.values())  # a group never straddles splits
    per_class = defaultdict(Counter)
    for g, lbl in dict(zip(groups, labels, strict=True)).items():
        per_class[lbl][by_group[g].pop()] += 1
    assert per_class["normal"] == Counter(train=35, val=5, test=10)
    assert per_class["crack"] == Counter(train=9, val=1, test=2)
    assert per_class["pit"] == Counter(train=1, val=1, test=1)
    assert per_class["rare"] == Counter(train=2)
    assert splits != assign_splits(groups, labels, FRACTIONS, seed=4)  # the seed matters


def test_splits_ignore_input_order_and_other_classes():
    groups, labels = _dataset({"normal": 30, "crack": 9})
    base = dict(zip(groups, assign_splits(groups, labels, FRACTIONS, seed=0), strict=True))
    order = list(range(len(groups)))
    random.Random(1).shuffle(order)
    shuffled = assign_splits([groups[i] for i in order], [labels[i] for i in order], FRACTIONS, seed=0)
    assert {groups[i]: s for i, s in zip(order, shuffled, strict=True)} == base
    # adding another class leaves the existing strata exactly as they were
    g2, l2 = _dataset({"pit": 7})
    more = assign_splits(groups + g2, labels + l2, FRACTIONS, seed=0)
    assert dict(zip(groups, more[: len(groups)], strict=True)) == base


def test_group_label_is_the_most_frequent_defect():
    assert group_label(["normal", "normal", "crack"]) == "crack"
    assert group_label(["pit", "crack", "pit"]) == "pit"
    assert group_label(["pit", "crack"], class_order=["crack", "pit"]) == "crack"  # tie: class order
    assert group_label(["normal", "normal"]) == "normal"


def _parts_dataset(root: Path, ingest_image, ingest_labelme, parts=12, defect_every=3):
    for k in range(parts):
        for light in ("bright", "dark"):
            stem = f"part{k:04d}_{light}"
            ingest_image(root / f"{stem}.png")
            shapes = [("dent", [(2, 2), (8, 2), (8, 8)])] if k % defect_every == 0 and light == "dark" else []
            ingest_labelme(root / f"{stem}.json", shapes=shapes)


def test_ingest_groups_by_pattern_and_keeps_parts_together(tmp_path, ingest_image, ingest_labelme):
    root = tmp_path / "parts"
    _parts_dataset(root, ingest_image, ingest_labelme)
    res = ingest([Source("labelme", root, name="p", group_pattern=r"^(part\d+)_")], ["dent"], seed=1)
    m = res.manifest
    assert m["group"].nunique() == 12 and set(m["group"]) == {f"p/part{k:04d}" for k in range(12)}
    assert (m.groupby("group")["split"].nunique() == 1).all()
    # a part is a defect part when any of its images is: 4 defect groups, at least one in val and test
    defect_groups = m[m["label"] == "dent"].groupby("split")["group"].nunique()
    assert defect_groups["val"] >= 1 and defect_groups["test"] >= 1
    # no pattern: every image is its own group
    alone = ingest([Source("labelme", root, name="p")], ["dent"], seed=1).manifest
    assert (alone["group"] == alone["id"]).all()


def test_ingest_is_independent_of_listing_and_source_order(tmp_path, ingest_image, ingest_labelme, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    _parts_dataset(a, ingest_image, ingest_labelme, parts=9)
    _parts_dataset(b, ingest_image, ingest_labelme, parts=9, defect_every=2)
    sources = [Source("labelme", a, group_pattern=r"^(part\d+)_"), Source("labelme", b, group_pattern=r"^(part\d+)_")]
    first = ingest(sources, ["dent"], seed=5)
    rglob = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: reversed(list(rglob(self, pattern))))
    second = ingest(sources[::-1], ["dent"], seed=5, workers=1)
    assert first.manifest.equals(second.manifest)
    assert first.annotations.equals(second.annotations)


def test_polygon_helpers():
    assert polygons.rectangle((5, 1), (2, 4)) == [(2, 1), (5, 1), (5, 4), (2, 4)]
    c = polygons.circle((10, 10), (13, 14))
    assert len(c) == polygons.CIRCLE_VERTICES and all(math.dist(p, (10, 10)) == pytest.approx(5) for p in c)
    assert polygons.area(c) == pytest.approx(math.pi * 25, rel=0.01)
    assert polygons.dedupe([(0, 0), (0, 0), (1, 0), (1, 1), (0, 0)]) == [(0, 0), (1, 0), (1, 1)]
    box = polygons.rotated_box(0, 0, 4, 2, 90)
    assert [tuple(round(v, 6) for v in p) for p in box] == [(3, -1), (3, 3), (1, 3), (1, -1)]


@pytest.mark.parametrize(
    "points, simple",
    [
        ([(0, 0), (4, 0), (4, 4), (0, 4)], True),
        ([(0, 0), (4, 0), (2, 1), (4, 4), (0, 4)], True),  # concave is fine
        ([(0, 0), (4, 4), (4, 0), (0, 4)], False),  # bow tie
        ([(0, 0), (4, 0), (4, 4), (2, 0), (0, 4)], False),  # vertex touches a non-adjacent edge
        ([(0, 0), (4, 0), (2, 0), (2, 3)], False),  # folds back onto itself
        ([(0, 0), (1, 0), (2, 0)], False),  # collinear: no area
        ([(0, 0), (10, 0), (10, 10), (0, 10), (5, 5), (0, 0.5)], True),  # a notch
        ([(0, 0), (10, 0), (10, 10), (0, 10), (12, 5), (0, 0.5)], False),  # the notch pokes through
    ],
)
def test_self_intersection(points, simple):
    assert (polygons.self_intersection(points) is None) == simple


def test_self_intersection_scales_to_long_polygons():
    n = 2000
    ring = [(100 + 50 * math.cos(2 * math.pi * k / n), 100 + 50 * math.sin(2 * math.pi * k / n)) for k in range(n)]
    assert polygons.self_intersection(ring) is None
    ring[500], ring[1500] = ring[1500], ring[500]
    assert polygons.self_intersection(ring) is not None
