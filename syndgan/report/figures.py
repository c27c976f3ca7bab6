"""Report figures as PNG bytes (matplotlib, Agg backend; no display needed): image grids, confusion matrices,
training curves. Pure functions: data in, PNG out.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Mapping, Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def colorize_labelmap(labels: np.ndarray, colors: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Label map (H, W) -> RGB (H, W, 3) uint8: class id k in its colour, background black."""
    out = np.zeros((*labels.shape, 3), np.uint8)
    for k, color in colors.items():
        out[labels == int(k)] = np.asarray(color, np.uint8)
    return out


def image_grid(
    rows: Sequence[Sequence[np.ndarray | None]],
    columns: Sequence[str],
    title: str = "",
    cell_inches: float = 1.9,
    notes: Sequence[Sequence[str]] | None = None,
) -> bytes:
    """A grid of uint8 images (H, W) or (H, W, 3); ``None`` leaves a cell blank. Column titles on top;
    ``notes[r][c]``: a small caption under a cell (e.g. its score)."""
    plt = _pyplot()
    n_rows, n_cols = max(len(rows), 1), len(columns)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(cell_inches * n_cols, cell_inches * n_rows + (0.4 if title else 0)), dpi=100,
        squeeze=False,
    )  # fmt: skip
    for r in range(n_rows):
        for c in range(n_cols):
            ax = axes[r][c]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            img = rows[r][c] if r < len(rows) and c < len(rows[r]) else None
            if img is not None:
                img = np.asarray(img)
                if img.ndim == 3 and img.shape[2] == 1:
                    img = img[:, :, 0]
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            if r == 0:
                ax.set_title(textwrap.fill(columns[c], 24), fontsize=9)  # long method names wrap, not overlap
            if notes is not None and r < len(notes) and c < len(notes[r]) and notes[r][c]:
                ax.set_xlabel(notes[r][c], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)


# Confusion matrices: digits at DIGIT_PT points on a DPI figure are DIGIT_PT / 72 * DPI px tall (16.7 px), and
# the figure stays narrower than the report's 1100 px column so the HTML never scales it down.
CONFUSION_DPI = 100
DIGIT_PT = 12
REPORT_WIDTH_PX = 1100


def confusion_figure(panels: Sequence[tuple[str, Sequence[Sequence[float]], Sequence[str]]], columns: int = 3) -> bytes:
    """Confusion matrices side by side, one per ``(title, matrix, classes)`` (rows: actual, columns:
    predicted), with counts and row-normalized shading."""
    plt = _pyplot()
    n = max(len(panels), 1)
    k_max = max((len(c) for _, _, c in panels), default=1)
    side = 1.4 + 0.75 * k_max
    cols = max(1, min(n, columns, int(REPORT_WIDTH_PX / CONFUSION_DPI // (side + 0.2))))
    n_rows = -(-n // cols)
    figsize = (side * cols, (side + 0.4) * n_rows)
    fig, axes = plt.subplots(n_rows, cols, figsize=figsize, dpi=CONFUSION_DPI, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, matrix, classes) in zip(axes.flat, panels, strict=False):
        cm = np.asarray(matrix, float)
        totals = cm.sum(axis=1, keepdims=True)
        frac = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
        k = len(classes)
        ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                value = cm[i, j]
                text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
                color = "white" if frac[i, j] > 0.5 else "black"
                ax.text(j, i, text, ha="center", va="center", fontsize=DIGIT_PT, color=color)
        ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=DIGIT_PT - 1)
        ax.set_yticks(range(k), classes, fontsize=DIGIT_PT - 1)
        ax.set_xlabel("predicted", fontsize=DIGIT_PT - 1)
        ax.set_ylabel("actual", fontsize=DIGIT_PT - 1)
        ax.set_title(title, fontsize=DIGIT_PT)
    fig.tight_layout()
    return _png(fig)


def curves_figure(
    panels: Sequence[tuple[str, Mapping[str, tuple[Sequence[float], Sequence[float]]]]],
    title: str = "",
    xlabel: str = "step",
    columns: int = 3,
) -> bytes:
    """One subplot per panel ``(panel title, {series name: (x, y)})``, up to ``columns`` per row."""
    plt = _pyplot()
    n = max(len(panels), 1)
    cols = min(n, columns)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (name, series) in zip(axes.flat, panels, strict=False):
        for label, (x, y) in series.items():
            x, y = np.asarray(x, float), np.asarray(y, float)
            ok = np.isfinite(x) & np.isfinite(y)
            ax.plot(x[ok], y[ok], label=label, linewidth=1.2, marker="o" if ok.sum() <= 12 else None, markersize=3)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if len(series) > 1:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _png(fig)
