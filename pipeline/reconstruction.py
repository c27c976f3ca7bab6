"""train_synth's reconstruction metrics, read for the evaluate and report stages (torch-free: report needs no torch)."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import Params
from syndgan.errors import DataError


def collect_reconstruction(params: Params) -> dict:
    """train_synth's reconstruction metrics (paper Tables 2 and 5): the model and each configured ablation."""
    ts = params.train_synth
    sources = {"syndgan": params.resolve(ts.metrics)}
    sources.update({a: params.resolve(ts.ablation_metrics) / f"{a}.json" for a in ts.ablations})
    models, not_run = {}, {}
    for name, path in sources.items():
        if not path.is_file():
            not_run[name] = f"{project_relative(path)} not found"
            continue
        try:
            models[name] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(path, f"not valid JSON: {e}") from None
    perceptual = next((m.get("perceptual") for m in models.values() if m.get("perceptual")), None)
    return {"perceptual": perceptual, "models": models, "not_run": not_run, "order": list(sources)}


def project_relative(path: Path) -> str:
    """``path`` relative to the project root (the working directory) when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)
