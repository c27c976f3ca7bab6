"""What the report reads: stage outputs, each either there or ``Missing`` (its section then says "Not run"),
and what it collects on the way: the figures and the list of what it read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline import methods
from pipeline.common import project_relative, read_json
from pipeline.config import Params
from pipeline.provenance import stage_outputs, synthesis_stage, trained_by
from pipeline.reconstruction import collect_reconstruction, metrics_file
from syndgan.augment import available_methods
from syndgan.data.processed import ProcessedDataset, train_pool
from syndgan.report.document import Document
from syndgan.report.tables import ABLATION_PREFIX

NOT_RUN = "Not run"
RAW_GRID_SCALE = 2.0  # training sample grids are small (working-resolution tiles): shown enlarged in HTML


class Missing(Exception):
    """A section's input does not exist (its stage is disabled or has not run)."""


class Figures:
    """What a report build collects: the PNGs it makes (kept in memory, written to ``<out>/figures/`` at the end)
    and ``read``, every stage output a section shows ({path: the stage that wrote it}, in reading order). The
    readers below add to ``read``; the provenance line is made from it alone, so nothing shown is left out."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.files: dict[str, bytes] = {}
        self.read: dict[Path, str] = {}

    def add(self, doc: Document, name: str, png: bytes, caption: str, scale: float = 1.0) -> None:
        self.files[name] = png
        doc.figure(self.folder / name, caption, png, scale)

    def source(self, path: Path, stage: str) -> Path:
        """``path``, listed as read (``stage``'s output)."""
        self.read.setdefault(path, stage)
        return path


def read_output(path: Path, stage: str, figs: Figures) -> dict:
    """``stage``'s output; ``Missing`` (the section says "Not run") when that stage has not written it."""
    doc = read_json(path, required=False)
    if doc is None:
        raise Missing(f"{stage}: {project_relative(path)} not found")
    figs.source(path, stage)
    return doc


def load_processed(params: Params, figs: Figures) -> ProcessedDataset:
    root = params.resolve(params.rasterize.out)
    for path in (root / "dataset.json", root / "index.parquet"):
        if not path.is_file():
            raise Missing(f"rasterize: {project_relative(path)} not found")
    return ProcessedDataset.load(figs.source(root, "rasterize"))


def method_stage(params: Params, folder: Path) -> str:
    """The stage that wrote an image method's folder: augment's, or evaluate for the ablation images it made."""
    return f"augment@{folder.name}" if folder.parent == params.resolve(params.augment.out) else "evaluate"


def image_methods(params: Params, figs: Figures) -> dict[str, tuple[Path, pd.DataFrame]]:
    """Augment outputs holding images ({method: (folder, manifest)}), classify.methods order first, then the
    ablation images evaluate synthesized. Each manifest read is listed, and with images the stage that trained
    the network which drew them (``augment.<method>.checkpoint``)."""
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
            manifest = pd.read_parquet(figs.source(path, method_stage(params, folder)))
            if not manifest.empty:
                found[name] = (folder, manifest)
                checkpoint = methods.checkpoint(params, name) if name in available_methods() else None
                if checkpoint and (stage := trained_by(params, checkpoint)):
                    figs.source(params.resolve(checkpoint), stage)
    return found


def train_pool_counts(dataset: ProcessedDataset) -> dict[str, int]:
    return train_pool(dataset)["label"].value_counts().to_dict()


def read_image(folder: Path, rel: str | None, mode: str) -> np.ndarray | None:
    if rel is None or not (folder / rel).is_file():
        return None
    with Image.open(folder / rel) as im:
        return np.asarray(im.convert(mode))


def read_log(path: Path, stage: str, figs: Figures) -> pd.DataFrame | None:
    """A training log (CSV with a ``step`` column); None when absent or empty."""
    if not path.is_file():
        return None
    df = pd.read_csv(path)
    if df.empty or "step" not in df.columns:
        return None
    figs.source(path, stage)
    return df


def reconstruction_inputs(params: Params, figs: Figures) -> dict:
    """Reconstruction metrics of every synthesis network whose metrics file is here: evaluate's copy first, then
    train_synth's own files, including ablations run under earlier params or after evaluate (their rows are
    shown, not dropped because params.yaml no longer lists them)."""
    recon = collect_reconstruction(params)
    folder = params.resolve(params.train_synth.ablation_metrics)
    for extra in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if extra.stem not in recon["models"]:
            recon["models"][extra.stem] = read_json(extra)
            recon["order"].append(extra.stem)
    ev_path = params.resolve(params.evaluate.metrics)
    evaluated = read_json(ev_path, required=False)
    if evaluated is not None:
        figs.source(ev_path, "evaluate")
        ev = evaluated.get("reconstruction", {})
        models = {**recon["models"], **ev.get("models", {})}
        recon = {
            "perceptual": ev.get("perceptual") or recon["perceptual"],
            "models": models,
            "not_run": {k: v for k, v in {**recon["not_run"], **ev.get("not_run", {})}.items() if k not in models},
            "order": list(dict.fromkeys([*ev.get("order", []), *recon["order"]])),
        }
    for name in recon["models"]:  # each row's numbers are its training stage's, evaluate's copy or not
        figs.source(metrics_file(params, name), synthesis_stage(name))
    return recon


def no_log(params: Params, stage: str, log_path: Path) -> str:
    """'Not run' only when the stage's output is absent too; a stage that ran without a loss log says so."""
    output = stage_outputs(params)[stage]
    if output.is_file():
        return f"{stage} ran (`{project_relative(output)}`), but its loss log `{project_relative(log_path)}` is not here: no curves."
    return f"{NOT_RUN}: {stage} (no {project_relative(output)}, no {project_relative(log_path)})."
