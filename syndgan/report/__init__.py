"""Evaluation and reporting helpers (pure functions): the paper's tables from the stages' JSON outputs,
figures (PNG bytes), a Markdown / self-contained HTML renderer, and (``syndgan.report.quality``, which loads
torch and the metric networks) synthesis-quality scoring of image sets."""

from syndgan.report.document import Document, render_html, render_markdown
from syndgan.report.figures import colorize_labelmap, confusion_figure, curves_figure, image_grid
from syndgan.report.tables import (
    ABLATION_LABELS,
    ABLATION_PREFIX,
    ALL,
    REAL_SET,
    classification_table,
    counts_table,
    markdown,
    reconstruction_table,
    set_label,
    synthesis_table,
)

__all__ = [
    "ABLATION_LABELS",
    "ABLATION_PREFIX",
    "ALL",
    "REAL_SET",
    "Document",
    "classification_table",
    "colorize_labelmap",
    "confusion_figure",
    "counts_table",
    "curves_figure",
    "image_grid",
    "markdown",
    "reconstruction_table",
    "render_html",
    "render_markdown",
    "set_label",
    "synthesis_table",
]
