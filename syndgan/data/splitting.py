"""Group-aware, stratified train/val/test assignment: a group's images share one split.

Results depend only on group names, labels, fractions and the seed: not on input order.
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from syndgan.data.records import NORMAL
from syndgan.errors import ConfigError

SPLITS = ("train", "val", "test")


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Groups of one stratum per split: rounded fractions; with >= 3 groups, val and test get at least
    one each when their fraction is > 0; train always keeps at least one."""
    _, f_val, f_test = fractions
    n_val, n_test = int(np.floor(n * f_val + 0.5)), int(np.floor(n * f_test + 0.5))
    if n >= 3:
        n_val = max(n_val, 1) if f_val > 0 else 0
        n_test = max(n_test, 1) if f_test > 0 else 0
    while n >= 1 and n - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def group_label(labels: Sequence[str], class_order: Sequence[str] = ()) -> str:
    """Most frequent defect class among a group's images (ties: class order, then name), else normal."""
    counts = Counter(lbl for lbl in labels if lbl != NORMAL)
    if not counts:
        return NORMAL
    rank = {c: i for i, c in enumerate(class_order)}
    return min(counts, key=lambda c: (-counts[c], rank.get(c, len(rank)), c))


def assign_splits(
    groups: Sequence[str],
    labels: Sequence[str],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    class_order: Sequence[str] = (),
    fixed: Sequence[str | None] | None = None,
) -> list[str]:
    """Split per image, stratified by label and group-aware: a group's images share one split.

    Groups are stratified by ``group_label``. Within a stratum the sorted group names are shuffled
    by a generator seeded with (seed, crc32(stratum label)), so each stratum's split depends only on
    its own groups, never on input order or on the other classes; ``split_counts`` sizes the splits.

    ``fixed``: per image, the split its dataset ships it in, or None. Such images keep their split, except
    that train is divided into train and val in the ratio of the train and val fractions (val is carved
    from train); the images without one are split as above.
    """
    if len(groups) != len(labels) or (fixed is not None and len(fixed) != len(groups)):
        raise ValueError("groups, labels and fixed differ in length")
    if fixed is not None and any(f is not None for f in fixed):
        out = list(fixed)
        f_train, f_val, _ = fractions
        for own, fr in ((None, fractions), ("train", (f_train / (f_train + f_val), f_val / (f_train + f_val), 0.0))):
            idx = [i for i, f in enumerate(fixed) if f == own]
            sub = assign_splits([groups[i] for i in idx], [labels[i] for i in idx], fr, seed, class_order)
            for i, sp in zip(idx, sub, strict=True):
                out[i] = sp
        return out
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    members: dict[str, list[str]] = defaultdict(list)
    for g, lbl in zip(groups, labels, strict=True):
        members[g].append(lbl)
    strata: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        strata[group_label(members[g], class_order)].append(g)
    where: dict[str, str] = {}
    for stratum, gs in strata.items():
        rng = np.random.default_rng([seed, zlib.crc32(stratum.encode("utf-8"))])
        order = [gs[i] for i in rng.permutation(len(gs))]
        n_train, n_val, _ = split_counts(len(gs), fractions)
        for k, g in enumerate(order):
            where[g] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return [where[g] for g in groups]
