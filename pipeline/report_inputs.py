"""What the report reads: stage outputs, each either there or ``Missing`` (its section then says "Not run"),
and the figures it collects on the way."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.common import project_relative, read_json
from pipeline.config import Params
from pipeline.provenance import stage_outputs
from syndgan.data.processed import ProcessedDataset, train_pool
from syndgan.report.document import Document
from syndgan.report.tables import ABLATION_PREFIX

NOT_RUN = "Not run"
RAW_GRID_SCALE = 2.0  # training sample grids are small (working-resolution tiles): shown enlarged in HTML


class Missing(Exception):
    """A section's input does not exist (its stage is disabled or has not run)."""


class Figures:
    """PNGs made for the report: kept in memory, written to ``<out>/figures/`` at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, bytes] = {}

    def add(self, doc: Document, name: str, png: bytes, caption: str, scale: float = 1.0) -> None:
        self.files[name] = png
        doc.figure(self.folder / name, caption, png, scale)


def read_output(path: Path, what: str) -> dict:
    """``what``'s output; ``Missing`` (the section says "Not run") when that stage has not written it."""
    doc = read_json(path, required=False)
    if doc is None:
        raise Missing(f"{what}: {project_relative(path)} not found")
    return doc


def load_processed(params: Params) -> ProcessedDataset:
    root = params.resolve(params.rasterize.out)
    for path in (root / "dataset.json", root / "index.parquet"):
        if not path.is_file():
            raise Missing(f"rasterize: {project_relative(path)} not found")
    return ProcessedDataset.load(root)


def image_methods(params: Params) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Augment outputs holding images ({method: (folder, manifest)}), classify.methods order first, then the
    ablation images evaluate synthesized."""
    root = params.resolve(params.augment.out)
    names = list(params.classify.methods) + list(params.evaluate.methods)
    if root.is_dir():
        names += sorted(p.name for p in root.iterdir() if p.is_dir())
    found: dict[str, tuple[Path, pd.DataFrame]] = {}
    folders = [(n, root / n) for n in dict.fromkeys(names)]
    ev = params.resolve(params.evaluate.out)
    if ev.is_dir():
        folders += [(p.name, p) for p in sorted(ev.iterdir()) if p.is_dir() and p.name.startswith(ABLATION_PREFIX)]
    for name, folder in folders:
        path = folder / "manifest.parquet"
        if name not in found and path.is_file():
            manifest = pd.read_parquet(path)
            if not manifest.empty:
                found[name] = (folder, manifest)
    return found


def train_pool_counts(dataset: ProcessedDataset) -> dict[str, int]:
    return train_pool(dataset)["label"].value_counts().to_dict()


def read_image(folder: Path, rel: str | None, mode: str) -> np.ndarray | None:
    if rel is None or not (folder / rel).is_file():
        return None
    with Image.open(folder / rel) as im:
        return np.asarray(im.convert(mode))


def read_log(path: Path) -> pd.DataFrame | None:
    """A training log (CSV with a ``step`` column); None when absent or empty."""
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    return df if not df.empty and "step" in df.columns else None


def no_log(params: Params, stage: str, log_path: Path) -> str:
    """'Not run' only when the stage's output is absent too; a stage that ran without a loss log says so."""
    output = stage_outputs(params)[stage]
    if output.is_file():
        return f"{stage} ran (`{project_relative(output)}`), but its loss log `{project_relative(log_path)}` is not here: no curves."
    return f"{NOT_RUN}: {stage} (no {project_relative(output)}, no {project_relative(log_path)})."
