"""Stage `augment` (one per method): class-balanced synthetic defect images from the train split.

    python -m pipeline.augment --method copy_paste

Writes ``<augment.out>/<method>/``: ``images/``, ``labelmaps/``, ``manifest.parquet`` (provenance of
every image: normal source, mask source(s), method, seed, transform) and ``augment.json`` (targets,
options, k-shot setting). Training-time methods (``none``, ``cutmix``) write only ``augment.json`` and
an empty manifest, so every classifier run reads its method's folder the same way.

With ``augment.gate.scorer`` set (``syndgan.quality``), ``oversample`` x the targets are rendered and scored,
the manifest lists the best target count per class, and the folder also holds ``gate.parquet`` (every
candidate with its score and whether it was kept), ``gate.json`` (per class: generated, kept, rejection
rate, score quantiles), ``rejected/`` (the rejected images and label maps) and, for the ``classifier``
scorer, ``scorer.pt`` (trained here on the train pool only; reused when the next run would train the same).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

from pipeline import methods
from pipeline.common import stage_main
from pipeline.config import Params
from syndgan.augment import (
    check_provenance,
    compute_targets,
    create_method,
    generate_augmented,
    targets_table,
)
from syndgan.augment.generate import empty_manifest
from syndgan.data.processed import NORMAL, ProcessedDataset, train_pool
from syndgan.io import atomic_dir, atomic_write_json
from syndgan.quality.gate import candidate_counts

log = logging.getLogger("syndgan.augment")


def run(params: Params, method: str) -> dict:
    cfg = params.augment
    methods.validate(params)
    if cfg.threads > 0:
        import torch

        torch.set_num_threads(cfg.threads)
    m = create_method(method, **methods.options(params, method))
    out = params.resolve(cfg.out) / method
    dataset = ProcessedDataset.load(params.resolve(params.rasterize.out))
    info: dict = {
        "method": method,
        "produces_images": m.produces_images,
        "options": {k: v for k, v in m.options().items() if k != "checkpoint"},
        "k_shot": dataset.k_shot,  # provenance: the train pool the images were drawn from
        "k_shot_seed": dataset.k_shot_seed,
    }
    with atomic_dir(out) as tmp:
        if not m.produces_images:
            empty_manifest().to_parquet(tmp / "manifest.parquet", index=False)
            info["images"] = 0
            (tmp / "augment.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
            log.info("%s works at classifier training time: no images to generate", method)
            return info
        pool = train_pool(dataset)
        counts = {name: int((pool["label"] == name).sum()) for name in [NORMAL, *dataset.class_names]}
        t = cfg.targets
        targets = compute_targets(counts, dataset.class_names, t.mode, t.ratio, t.count, t.per_class)
        log.info("synthetic images per class (mode %s):\n%s", t.mode, targets_table(counts, targets))
        gate = cfg.gate
        make = candidate_counts(targets, gate.oversample) if gate.enabled else targets
        manifest = generate_augmented(dataset, m, make, tmp, pool, cfg.placement, cfg.seed, progress=True)
        if gate.enabled:
            manifest = run_gate(params, dataset, pool, manifest, targets, tmp, out)
            info["gate"] = {**dataclasses.asdict(gate), "candidates": make, "summary": "gate.json"}
        check_provenance(manifest, pool, out / "manifest.parquet", dataset.index)
        manifest.to_parquet(tmp / "manifest.parquet", index=False)
        info.update(
            {
                "seed": cfg.seed,
                "targets": targets,
                "train_counts": counts,
                "placement": cfg.placement.record(),
                "images": len(manifest),
                "resolution": dataset.resolution,
                "channels": dataset.channels,
            }
        )
        (tmp / "augment.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    log.info("wrote %d %s images to %s", len(manifest), method, out)
    return info


def run_gate(params: Params, dataset: ProcessedDataset, pool, candidates, targets, tmp: Path, out: Path):
    """Score the candidates in ``tmp``, keep the best ``targets`` per class; returns the kept images' manifest."""
    from syndgan.quality.gate import apply_gate, check_training_ids, score_candidates, summarize

    g = params.augment.gate
    patch = None
    if g.scorer == "discriminator":
        from syndgan.quality.scorers import DiscriminatorScorer

        scorer = DiscriminatorScorer.from_file(params.resolve(params.pretrain.out) / "discriminator.pt")
        # a discriminator pretrained on windows judges the window around the defect
        patch = params.pretrain.patch_size if params.pretrain.data_mode == "patch" else None
    else:
        from syndgan.quality.scorers import train_classifier_scorer, training_ids

        names = [NORMAL, *dataset.class_names]
        scorer = train_classifier_scorer(
            dataset.root, pool, names, g.classifier, params.augment.seed, tmp / "scorer.pt", out / "scorer.pt"
        )
        check_training_ids(training_ids(tmp / "scorer.pt"), pool, out / "scorer.pt", dataset.index)
    scores = score_candidates(scorer, tmp, candidates, dataset.mode, patch)
    manifest, table = apply_gate(tmp, candidates, scores, targets)
    check_provenance(table, pool, out / "gate.parquet", dataset.index)  # the rejected ones too
    table.to_parquet(tmp / "gate.parquet", index=False)
    summary = {"scorer": g.scorer, "score": SCORE_MEANING[g.scorer], "window": patch, **summarize(table)}
    atomic_write_json(tmp / "gate.json", summary)
    total = summary["total"]
    log.info(
        "quality gate (%s): kept %d of %d candidates (rejection rate %.0f %%)",
        g.scorer, total["kept"], total["generated"], 100 * total["rejection_rate"],
    )  # fmt: skip
    return manifest


SCORE_MEANING = {
    "discriminator": "pretrain discriminator realism: mean logit (> 0: judged real)",
    "classifier": "P(intended class) from a classifier trained on the real train pool only",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--method", required=True, help="augmentation method (see syndgan.augment.available_methods)")
    known, rest = ap.parse_known_args(argv)
    return stage_main(
        "augment", lambda p: run(p, known.method), rest, __doc__, outputs=lambda p: [Path(p.augment.out, known.method)]
    )


if __name__ == "__main__":
    raise SystemExit(main())
