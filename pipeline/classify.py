"""Stage `classify` (one per method x seed): EfficientNet trained on train + the method's augmentation,
selected on val, reported on test.

    python -m pipeline.classify --method copy_paste --seed 0

Methods that render images are run once per ``classify.doses`` entry (synthetic images per class) and
``classify.synthetic`` rule (loss weight, share per batch, synthetic-only pretraining; key ``<dose>`` for the
default rule, else e.g. ``30_w0.3``); training-time methods (``none``, ``cutmix``) once, with dose 0. Every run
gets the same step budget.
Writes ``<classify.out>/<method>-s<seed>/`` (``metrics.json``; per dose ``history.csv``,
``confusion.csv`` and ``model.pt``) and ``<classify.plots>/<method>-s<seed>/dose-<dose>.csv``
(id, actual, predicted: DVC's confusion template).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import tempfile
from pathlib import Path

import pandas as pd
import torch

from pipeline.common import RESUME_ROOT, is_writer, read_json, stage_main
from pipeline.config import Params
from syndgan.augment import check_provenance, create_method
from syndgan.classify import (
    classification_metrics,
    dose_dir,
    load_real,
    load_synthetic,
    model_path,
    predict,
    run_name,
    select_dose,
    train_classifier,
)
from syndgan.data.processed import ProcessedDataset, train_pool
from syndgan.errors import DataError
from syndgan.io import atomic_dir

log = logging.getLogger("syndgan.classify")

RESUME_DIR = RESUME_ROOT / "classify"


def read_augment_info(aug_dir: Path, method: str, dataset: ProcessedDataset) -> dict:
    path = aug_dir / "augment.json"
    info = read_json(path, hint=f"run `dvc repro augment@{method}` first")
    if info.get("method") != method:
        raise DataError(path, f"made by method {info.get('method')!r}, not {method!r}")
    if (info.get("k_shot"), info.get("k_shot_seed")) != (dataset.k_shot, dataset.k_shot_seed):
        raise DataError(
            path,
            f"made for k_shot={info.get('k_shot')} (seed {info.get('k_shot_seed')}), but the processed data's train "
            f"pool has k_shot={dataset.k_shot} (seed {dataset.k_shot_seed}); rerun augment@{method}",
        )
    return info


def native_paths(params: Params) -> dict[str, str]:
    """Image id -> source file (relative to the working directory, as ingest stores it)."""
    path = params.resolve(params.ingest.out) / "manifest.parquet"
    if not path.is_file():
        raise DataError(path, "not found; classify.train.input: native reads the source images it lists")
    manifest = pd.read_parquet(path, columns=["id", "path"])
    return dict(zip(manifest["id"], manifest["path"], strict=True))


def run(params: Params, method: str, seed: int) -> dict:
    c = params.classify
    settings = c.train
    if settings.threads > 0:
        torch.set_num_threads(settings.threads)
    aug_dir = params.resolve(params.augment.out) / method
    dataset = ProcessedDataset.load(params.resolve(params.rasterize.out))
    info = read_augment_info(aug_dir, method, dataset)
    m = create_method(method, **info.get("options", {}))
    manifest = pd.read_parquet(aug_dir / "manifest.parquet")
    pool = train_pool(dataset)
    check_provenance(manifest, pool, aug_dir / "manifest.parquet", dataset.index)  # no val/test image, ever
    native = native_paths(params) if settings.input == "native" else None
    real = load_real(dataset, settings.resolution, native)
    names = real.class_names
    budget = settings.step_budget(len(real.train))
    log.info(
        "%s seed %d: %d real train images %s, val %d, test %d; %d steps of %d",
        method,
        seed,
        len(real.train),
        dict(zip(names, real.train.counts(len(names)), strict=True)),
        len(real.val),
        len(real.test),
        budget,
        settings.batch_size,
    )
    name = run_name(method, seed)
    results: dict = {"method": method, "seed": seed, "k_shot": dataset.k_shot, "classes": names, "doses": {}}
    out_dir, plot_dir = params.resolve(c.out) / name, params.resolve(c.plots) / name
    with contextlib.ExitStack() as stack:
        if is_writer():
            tmp_out, tmp_plot = stack.enter_context(atomic_dir(out_dir)), stack.enter_context(atomic_dir(plot_dir))
        else:  # torchrun ranks > 0 train alongside rank 0; what they would write goes to a scratch folder
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="syndgan-rank-")))
            tmp_out, tmp_plot = scratch / "out", scratch / "plots"
            tmp_out.mkdir(), tmp_plot.mkdir()
        for key, dose, use in c.runs_of(m.produces_images):
            train = real.train
            if m.produces_images:
                syn = select_dose(manifest, dose, dataset.class_names, aug_dir / "manifest.parquet")
                train = train + load_synthetic(aug_dir, syn, names, settings.resolution)
            resume = RESUME_DIR / f"{name}-dose-{key}.pt"
            result = train_classifier(
                train, real.val, names, settings, seed, budget, mix=m.mix_batch, resume_path=resume, progress=True,
                use=use,
            )  # fmt: skip
            # rank 0 validates: under torchrun the other ranks have no history (and write to a scratch folder)
            best = next((h for h in result.history if h["step"] == result.best_step), None)
            logits = predict(result.model, real.test.x, next(result.model.parameters()).device)
            pred = logits.argmax(1).tolist()
            metrics = classification_metrics(real.test.y.tolist(), pred, names)
            metrics.update(
                {
                    "train_counts": dict(zip(names, train.counts(len(names)), strict=True)),
                    "synthetic_per_class": dict(
                        zip(names, (train.y[train.synthetic]).bincount(minlength=len(names)).tolist(), strict=True)
                    ),
                    "val_macro_f1": best and best["val_macro_f1"],  # what classify.select_on: val ranks doses by
                    "val_accuracy": best and best["val_accuracy"],
                    "best_step": result.best_step,
                    "steps_run": result.steps_run,
                    "steps_budget": result.steps_budget,
                    "train_seconds": round(result.seconds, 1),
                }
            )
            results["doses"][key] = metrics
            d = dose_dir(tmp_out, key)
            d.mkdir()
            pd.DataFrame(result.history).to_csv(d / "history.csv", index=False)
            pd.DataFrame(metrics["confusion"], index=names, columns=names).rename_axis("actual").to_csv(
                d / "confusion.csv"
            )
            if c.save_model:
                torch.save(
                    {
                        "model": result.model.state_dict(),
                        "arch": settings.arch,
                        "classes": names,
                        "resolution": settings.resolution,
                        "method": method,
                        "seed": seed,
                        "dose": key,
                    },
                    model_path(tmp_out, key),  # where the studio's find_scorer looks for none's
                )
            pd.DataFrame(
                {
                    "id": real.test.ids,
                    "actual": [names[i] for i in real.test.y.tolist()],
                    "predicted": [names[i] for i in pred],
                }
            ).to_csv(tmp_plot / f"dose-{key}.csv", index=False)
            log.info(
                "%s seed %d dose %s: test accuracy %.1f %%, macro-F1 %.1f, defect recall %s (best step %d of %d run)",
                method,
                seed,
                key,
                100 * metrics["total_accuracy"],
                100 * metrics["macro_f1"],
                "-" if metrics["defect_recall"] is None else f"{100 * metrics['defect_recall']:.1f} %",
                result.best_step,
                result.steps_run,
            )
            if is_writer():
                resume.unlink(missing_ok=True)
        (tmp_out / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--method", required=True)
    ap.add_argument("--seed", required=True, type=int)
    known, rest = ap.parse_known_args(argv)
    own = run_name(known.method, known.seed)  # this run's folders (its dvc.yaml outs) and resume files
    return stage_main(
        "classify",
        lambda p: run(p, known.method, known.seed),
        rest,
        __doc__,
        outputs=lambda p: [
            Path(p.classify.out, own),
            Path(p.classify.plots, own),
            *(RESUME_DIR / f"{own}-dose-{key}.pt" for key, _, _ in p.classify.runs_of(True)),
        ],
    )


if __name__ == "__main__":
    raise SystemExit(main())
