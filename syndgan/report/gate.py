"""The augment stage's quality gate in the report: per method and class, how many candidates were generated,
kept and rejected, and how the scores spread (from ``gate.json``), and a grid of the best kept next to the
worst rejected candidates of each class (from ``gate.parquet``; the images are in the method's folder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syndgan.report.figures import image_grid
from syndgan.report.tables import ALL, fmt, fmt_int, set_label

GRID_CAPTION = "per class the highest-scored kept candidates, then the lowest-scored rejected ones (score below each)"


def gate_paragraph(summaries: Mapping[str, Mapping]) -> str:
    meaning = "; ".join(f"{set_label(m)}: {s['score']}" for m, s in summaries.items())
    return (
        "Each method rendered more candidates per class than it keeps (pairing and placement exactly as without "
        "the gate), scored every one and kept the highest-scored target count per class; only those are in the "
        f"manifest the classifiers read (a dose of n takes the first n kept, in candidate order). Scores: {meaning}."
    )


def gate_table(summaries: Mapping[str, Mapping]) -> tuple[list[str], list[list[str]]]:
    """Rows: method x class, then the method's total; ``summaries``: {method: its ``gate.json``}."""
    header = ["method", "scorer", "class", "generated", "kept", "rejection rate (%)", "score min / median / max"]
    header += ["lowest kept score", "mean score kept / rejected"]
    rows = []
    for method, s in summaries.items():
        for name, c in s["classes"].items():
            q = c["score"]
            rows.append(
                [
                    set_label(method),
                    s["scorer"],
                    name,
                    fmt_int(c["generated"]),
                    fmt_int(c["kept"]),
                    fmt(100 * c["rejection_rate"], 1),
                    f"{fmt(q['min'], 3)} / {fmt(q['median'], 3)} / {fmt(q['max'], 3)}",
                    fmt(c["threshold"], 3),
                    f"{fmt(c['kept_mean'], 3)} / {fmt(c['rejected_mean'], 3)}",
                ]
            )
        t = s["total"]
        rows.append([set_label(method), s["scorer"], ALL, fmt_int(t["generated"]), fmt_int(t["kept"])])
        rows[-1] += [fmt(100 * t["rejection_rate"], 1), "", "", ""]
    return header, rows


def gate_grid(folder: Path, table: pd.DataFrame, classes: Sequence[str], n: int, mode: str) -> bytes:
    """One row per class: its ``n`` highest-scored kept candidates, then its ``n`` lowest-scored rejected ones,
    each captioned with its score."""
    columns = [f"kept {i + 1}" for i in range(n)] + [f"rejected {i + 1}" for i in range(n)]
    rows, notes = [], []
    for name in classes:
        df = table[table["label"] == name]
        if df.empty:
            continue
        kept = df[df["kept"]].sort_values(["score", "candidate"], ascending=[False, True]).head(n)
        rejected = df[~df["kept"]].sort_values(["score", "candidate"]).head(n)
        cells, text = [], []
        for part in (kept, rejected):
            picked = list(part.itertuples(index=False))
            cells += [_read(folder / r.image, mode) for r in picked] + [None] * (n - len(picked))
            text += [f"{name} {r.score:.3g}" for r in picked] + [""] * (n - len(picked))
        rows.append(cells)
        notes.append(text)
    return image_grid(rows, columns, cell_inches=1.3, notes=notes)


def _read(path: Path, mode: str) -> np.ndarray | None:
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert(mode))
