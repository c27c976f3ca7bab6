"""Classifier recipe ablation: which choice of the classify stage costs or buys accuracy (no augmentation).

    python -m pipeline.experiments.bench_classify --params data/configs/magnetic-tile.yaml --workdir runs/mt \
        --k-shot all 10 --seeds 0 1 2 --variants default processed dihedral
    python -m pipeline.experiments.bench_classify ... --k-shot 5 --seeds 0 --subsets 0 1 2 3 4 --variants default

``--subsets`` draws other sets of k kept defect images (``rasterize.k_shot_seed``; the pipeline's is 0), each
trained with every seed: at small k which images are kept can matter more than the classifier's seed.

Runs in a work folder that already holds the params file's ingest + rasterize outputs. Each variant is
``classify.train`` with a few settings changed (VARIANTS); every (k, subset, variant, seed) result is cached
as JSON under ``<workdir>/bench_classify/k<k>[-subset<s>]/`` so a killed benchmark resumes. Prints val and
test numbers: pick on val, read test once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

# Each is a set of changes to classify.train; "previous" is the recipe this project used before issue 16.
VARIANTS: dict[str, dict] = {
    "default": {},
    "processed": {"input": "processed"},  # through the rasterized copy (e.g. 128 px) instead of the source file
    "dihedral": {"augment": "dihedral"},  # flips + 90-degree turns
    "cosine": {"schedule": "cosine", "warmup": 0.08},  # linear warm-up + cosine, fixed beta1
    "early_eval": {"eval_every": 25, "eval_from_epoch": 0},  # validate every 25 steps from the start
    "previous": {
        "input": "processed",
        "augment": "dihedral",
        "schedule": "cosine",
        "warmup": 0.08,
        "eval_every": 25,
        "eval_from_epoch": 0,
    },
}


def _summary(values: list[float]) -> str:
    v = np.array(values, float) * 100
    return f"{v.mean():.1f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.1f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.experiments.bench_classify", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--params", required=True, type=Path)
    ap.add_argument("--workdir", required=True, type=Path)
    ap.add_argument("--k-shot", nargs="+", default=["all"], help="defect images per class kept in train, or all")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--subsets", nargs="+", type=int, default=None, help="k_shot_seeds (default: the pipeline's)")
    args = ap.parse_args(argv)

    import torch

    from pipeline.classify import native_paths
    from pipeline.config import load_params
    from syndgan.classify import classification_metrics, load_real, predict, train_classifier
    from syndgan.data.processed import ProcessedDataset

    root = Path(__file__).resolve().parents[2]
    params = load_params(args.params.resolve(), base=root / "params.yaml")  # an overlay of params.yaml
    os.environ.setdefault("SYNDGAN_ROOT", str(root))
    os.chdir(args.workdir)
    if params.classify.train.threads > 0:  # 0: torch's default (every core), as in the classify stage
        torch.set_num_threads(params.classify.train.threads)
    dataset = ProcessedDataset.load(params.resolve(params.rasterize.out))
    cache = Path("bench_classify")
    rows = []
    subsets = list(dict.fromkeys(args.subsets or [dataset.k_shot_seed]))
    runs = [(k, s) for k in args.k_shot for s in (subsets if k != "all" else [0])]  # all: nothing to draw
    for k, subset in runs:
        k_shot = None if k == "all" else int(k)
        folder = cache / (f"k{k}" if subset == 0 else f"k{k}-subset{subset}")  # k<k>: from before --subsets
        loaded: dict[str, object] = {}
        for variant in args.variants:
            settings = dataclasses.replace(params.classify.train, **VARIANTS[variant])
            for seed in args.seeds:
                out = folder / f"{variant}-s{seed}.json"
                if not out.is_file():
                    if settings.input not in loaded:
                        native = native_paths(params) if settings.input == "native" else None
                        pool = dataclasses.replace(dataset, k_shot=k_shot, k_shot_seed=subset)  # on the same data
                        loaded[settings.input] = load_real(pool, settings.resolution, native)
                    real = loaded[settings.input]
                    t0 = time.time()
                    r = train_classifier(real.train, real.val, real.class_names, settings, seed)
                    device = next(r.model.parameters()).device
                    m = {}
                    for split in ("val", "test"):
                        data = getattr(real, split)
                        pred = predict(r.model, data.x, device).argmax(1).tolist()
                        m[split] = classification_metrics(data.y.tolist(), pred, real.class_names)
                    record = {
                        "k": k,
                        "subset": subset,
                        "variant": variant,
                        "seed": seed,
                        "best_step": r.best_step,
                        "steps": r.steps_run,
                        "seconds": round(time.time() - t0, 1),
                        **{
                            f"{split}_{key}": m[split][key]
                            for split in m
                            for key in ("total_accuracy", "macro_f1", "defect_recall")
                        },
                        "test_normal_recall": m["test"]["per_class_accuracy"]["normal"],
                    }
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_text(json.dumps(record, indent=2) + "\n")
                    print(json.dumps(record), flush=True)
                rows.append(json.loads(out.read_text()))
    for r in rows:  # records from before subsets were drawn: the pipeline's draw then, seed 0
        r.setdefault("subset", 0)
    per_subset = len(subsets) > 1  # then each subset on its own, and all of them together
    groups = [
        (k, v, s)
        for k in args.k_shot
        for v in args.variants
        for s in ([*subsets, None] if per_subset and k != "all" else [None])
    ]
    print("\n| k | variant | subset | runs | val macro-F1 | test total | test macro-F1 | defect recall | normal recall "
          "| s/run |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for k, variant, subset in groups:
        rs = [r for r in rows if r["k"] == k and r["variant"] == variant and subset in (None, r["subset"])]
        cells = [_summary([r[key] for r in rs]) for key in ("val_macro_f1", "test_total_accuracy", "test_macro_f1")]
        cells += [_summary([r[key] for r in rs]) for key in ("test_defect_recall", "test_normal_recall")]
        secs = np.mean([r["seconds"] for r in rs])
        if subset is None:  # the pooled row
            subset = "-" if k == "all" else "+".join(map(str, subsets))
        print(f"| {k} | {variant} | {subset} | {len(rs)} | " + " | ".join(cells) + f" | {secs:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
