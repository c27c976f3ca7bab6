"""The quality gate on an augment output: score every rendered candidate, keep the best target count per class.

``generate_augmented`` renders ``candidate_counts`` images per class. Candidate ``i`` of a class is the image
the ungated run renders as image ``i`` (pairing and placement depend only on seed, class and ``i``), so the
gate only adds candidates and chooses among them, with the same rule for every method. ``apply_gate`` keeps,
per class, the highest-scored target count (ties: the earlier candidate), renumbers their ranks 0..n-1 in
candidate order (a classifier dose of n still takes ranks 0..n-1: a random subset of the kept ones, not the
n best) and moves the rejected images and label maps to ``rejected/``. The returned table (``gate.parquet``)
holds every candidate: the manifest's columns, ``candidate`` (its generation index), ``score``, ``kept``; a
rejected row's ``rank`` is -1.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from syndgan.data.processed import read_png
from syndgan.errors import DataError, SyndganError

REJECTED = "rejected"  # subfolder of the method's output holding the rejected images and label maps
GATE_COLUMNS = {"candidate": "int64", "score": "float64", "kept": "bool"}
QUANTILES = {"min": 0.0, "q25": 0.25, "median": 0.5, "q75": 0.75, "max": 1.0}
CHUNK = 256  # candidates read and scored at a time


def candidate_counts(targets: Mapping[str, int], oversample: float) -> dict[str, int]:
    """ceil(oversample x target) per class (rounded first, so 10 x 1.1 is 11, not 12)."""
    return {c: int(math.ceil(round(int(n) * oversample, 6))) for c, n in targets.items()}


def defect_window(labels: np.ndarray, patch: int) -> tuple[int, int, int]:
    """The first window a patch-mode synthesizer paints for ``labels`` (``Synthesizer.windows``' rule); without
    a defect pixel (unpaired methods such as ``generation`` place no mask) the centre window, or the whole image
    when it is smaller than ``patch``."""
    from syndgan.synthesis import defect_windows

    windows = defect_windows(labels, patch, margin=max(2, patch // 16))
    if not windows:
        h, w = labels.shape[:2]
        size = min(patch, h, w)
        return (w - size) // 2, (h - size) // 2, size
    win = windows[0][0]
    return win.x0, win.y0, win.size


def score_candidates(scorer, root: Path, candidates: pd.DataFrame, mode: str, patch: int | None = None) -> np.ndarray:
    """``scorer.batch_scores`` of every candidate image (read from ``root`` in PIL ``mode``); ``patch``: judge
    the window of that many px around the defect, not the whole image (a discriminator trained on patches)."""
    out = []
    for start in range(0, len(candidates), CHUNK):
        rows = candidates.iloc[start : start + CHUNK]
        images = [read_png(root / p, mode) for p in rows["image"]]
        windows = None
        if patch is not None:
            windows = [defect_window(read_png(root / p, "L"), patch) for p in rows["labelmap"]]
        out.append(np.asarray(scorer.batch_scores(images, list(rows["label"]), windows), np.float64))
    scores = np.concatenate(out) if out else np.zeros(0)
    bad = np.flatnonzero(~np.isfinite(scores))
    if len(bad):
        raise SyndganError(f"quality gate: the scorer gave {scores[bad[0]]} for {candidates['id'].iloc[bad[0]]}")
    return scores


def select_best(labels: np.ndarray, scores: np.ndarray, targets: Mapping[str, int]) -> np.ndarray:
    """Bool mask: per class the ``targets[c]`` highest scores (ties: the earlier row)."""
    kept = np.zeros(len(labels), bool)
    for name, n in targets.items():
        idx = np.flatnonzero(np.asarray(labels) == name)
        if len(idx) < int(n):
            raise SyndganError(f"quality gate: {len(idx)} {name!r} candidates for a target of {n}")
        kept[idx[np.argsort(-scores[idx], kind="stable")[: int(n)]]] = True
    return kept


def apply_gate(
    root: Path, candidates: pd.DataFrame, scores: np.ndarray, targets: Mapping[str, int]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(manifest of the kept images, table of every candidate); rejected files move to ``root/rejected/``."""
    table = candidates.reset_index(drop=True).copy()
    table["candidate"] = table["rank"].astype("int64")
    table["score"] = np.asarray(scores, np.float64)
    table["kept"] = select_best(table["label"].to_numpy(), table["score"].to_numpy(), targets)
    table["rank"] = -1
    table.loc[table["kept"], "rank"] = table[table["kept"]].groupby("label", sort=False).cumcount()
    for i in np.flatnonzero(~table["kept"].to_numpy()):
        for col in ("image", "labelmap"):
            rel = f"{REJECTED}/{table.at[i, col]}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(root / table.at[i, col], root / rel)
            table.at[i, col] = rel
    table = table.astype({"rank": "int64", **GATE_COLUMNS})
    manifest = table[table["kept"]].drop(columns=list(GATE_COLUMNS)).reset_index(drop=True)
    return manifest, table


def summarize(table: pd.DataFrame) -> dict:
    """Per class and in total: generated, kept, rejected, rejection rate; per class the score quantiles of
    the candidates, the lowest kept score (the bar) and the mean kept / rejected score."""

    def stats(df: pd.DataFrame) -> dict:
        n, k = len(df), int(df["kept"].sum())
        return {"generated": n, "kept": k, "rejected": n - k, "rejection_rate": (n - k) / n if n else 0.0}

    classes = {}
    for name, df in table.groupby("label", sort=False):
        s, kept = df["score"], df["kept"]
        classes[str(name)] = stats(df) | {
            "threshold": float(s[kept].min()),
            "kept_mean": float(s[kept].mean()),
            "rejected_mean": float(s[~kept].mean()) if (~kept).any() else None,
            "score": {q: float(s.quantile(v)) for q, v in QUANTILES.items()},
        }
    return {"classes": classes, "total": stats(table)}


def check_training_ids(ids, allowed: pd.DataFrame, where: str | Path, index: pd.DataFrame | None = None) -> None:
    """Every image a scorer learned from is in ``allowed`` (the train pool); else a ``DataError`` naming the
    first one and, given the full ``index``, the split it really is in."""
    pool = set(allowed["id"])
    splits = index.set_index("id")["split"].to_dict() if index is not None else {}
    for image_id in ids:
        if image_id not in pool:
            where_from = (
                f"in split {splits[image_id]!r}"
                if splits.get(image_id, "train") != "train"
                else "not in the train pool"
            )
            raise DataError(where, f"scorer trained on {image_id!r}, which is {where_from}")
