"""How many synthetic images each defect class gets.

Modes (counts are of the *train* split, after any k-shot reduction):
  ``ratio``   add ``ratio`` x (number of normal images) per defect class; the paper adds about 0.5x.
  ``count``   add ``count`` images per defect class.
  ``balance`` add enough to bring every defect class up to the largest class (normally "normal").
``per_class`` overrides the mode for the classes it names (absolute numbers).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from syndgan.errors import ConfigError

MODES = ("ratio", "count", "balance")


def compute_targets(
    train_counts: Mapping[str, int],
    classes: Sequence[str],
    mode: str = "ratio",
    ratio: float = 0.5,
    count: int = 30,
    per_class: Mapping[str, int] | None = None,
    normal: str = "normal",
    key: str = "augment.targets",
) -> dict[str, int]:
    """Synthetic images to add per defect class, in ``classes`` order. ``key`` names the params in errors."""
    per_class = dict(per_class or {})
    unknown = sorted(set(per_class) - set(classes))
    if unknown:
        raise ConfigError(f"{key}.per_class.{unknown[0]}: unknown class (known: {', '.join(classes)})")
    for name, n in per_class.items():
        if n < 0:
            raise ConfigError(f"{key}.per_class.{name}: must be >= 0, got {n}")
    if mode not in MODES:
        raise ConfigError(f"{key}.mode: must be one of {', '.join(MODES)}, got {mode!r}")
    n_normal = int(train_counts.get(normal, 0))
    if mode == "ratio":
        if ratio < 0:
            raise ConfigError(f"{key}.ratio: must be >= 0, got {ratio}")
        if n_normal == 0 and ratio > 0 and set(classes) - set(per_class):
            raise ConfigError(f"{key}.mode: 'ratio' needs normal train images, there are none; use 'count'")
        base = {c: int(round(ratio * n_normal)) for c in classes}
    elif mode == "count":
        if count < 0:
            raise ConfigError(f"{key}.count: must be >= 0, got {count}")
        base = {c: int(count) for c in classes}
    else:
        largest = max([int(v) for v in train_counts.values()] or [0])
        base = {c: max(0, largest - int(train_counts.get(c, 0))) for c in classes}
    return {c: int(per_class.get(c, base[c])) for c in classes}


def targets_table(train_counts: Mapping[str, int], targets: Mapping[str, int], normal: str = "normal") -> str:
    """A small plain-text table (class, real, added, total) for logs."""
    rows = [(normal, int(train_counts.get(normal, 0)), 0)]
    rows += [(c, int(train_counts.get(c, 0)), int(n)) for c, n in targets.items()]
    width = max(len(r[0]) for r in rows + [("class", 0, 0)])
    lines = [f"{'class':<{width}} {'real':>6} {'added':>6} {'total':>6}"]
    lines += [f"{c:<{width}} {real:>6} {add:>6} {real + add:>6}" for c, real, add in rows]
    return "\n".join(lines)
