"""train_synth's reconstruction metrics, read for the evaluate and report stages (torch-free: report needs no torch)."""

from __future__ import annotations

from pathlib import Path

from pipeline.common import project_relative, read_json
from pipeline.config import Params


def metrics_file(params: Params, name: str) -> Path:
    """Where synthesis network ``name``'s reconstruction metrics are: train_synth's for ``syndgan``, else the
    ablation's."""
    ts = params.train_synth
    return params.resolve(ts.metrics) if name == "syndgan" else params.resolve(ts.ablation_metrics) / f"{name}.json"


def collect_reconstruction(params: Params) -> dict:
    """train_synth's reconstruction metrics (paper Tables 2 and 5): the model and each configured ablation."""
    sources = {name: metrics_file(params, name) for name in ["syndgan", *params.train_synth.ablations]}
    models, not_run = {}, {}
    for name, path in sources.items():
        doc = read_json(path, required=False)
        if doc is None:
            not_run[name] = f"{project_relative(path)} not found"
        else:
            models[name] = doc
    perceptual = next((m.get("perceptual") for m in models.values() if m.get("perceptual")), None)
    return {"perceptual": perceptual, "models": models, "not_run": not_run, "order": list(sources)}
