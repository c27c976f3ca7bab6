"""train_synth's reconstruction metrics, read for the evaluate and report stages (torch-free: report needs no torch)."""

from __future__ import annotations

from pipeline.common import project_relative, read_json
from pipeline.config import Params


def collect_reconstruction(params: Params) -> dict:
    """train_synth's reconstruction metrics (paper Tables 2 and 5): the model and each configured ablation."""
    ts = params.train_synth
    sources = {"syndgan": params.resolve(ts.metrics)}
    sources.update({a: params.resolve(ts.ablation_metrics) / f"{a}.json" for a in ts.ablations})
    models, not_run = {}, {}
    for name, path in sources.items():
        doc = read_json(path, required=False)
        if doc is None:
            not_run[name] = f"{project_relative(path)} not found"
        else:
            models[name] = doc
    perceptual = next((m.get("perceptual") for m in models.values() if m.get("perceptual")), None)
    return {"perceptual": perceptual, "models": models, "not_run": not_run, "order": list(sources)}
