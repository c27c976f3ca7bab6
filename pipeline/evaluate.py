"""Stage `evaluate`: synthesis quality (paper Table 1) and the reconstruction table (Tables 2 and 5).

    python -m pipeline.evaluate [--params params.yaml]

Fair protocol: the synthesized images of a class (``<augment.out>/<method>/``, the first
``evaluate.max_images_per_class`` by rank) are compared with the real TEST defects of that class
(``<rasterize.out>``, ``split == test``), per class and pooled (``all``), with the registry's FID and KID
(features extracted once per image set) and IC diversity (clustered on the real train defects the masks
came from). The same code scores the real TRAIN defects against the same test defects: the real-vs-real
row, the floor these tiny sets allow.

The train_synth ablations (``train_synth.ablations``, models in ``<train_synth.ablation_out>/<name>/``) are
evaluated too: from ``<augment.out>/syndgan_<name>/`` when augment made images for them, else this stage
synthesizes ``evaluate.ablation_images_per_class`` images per class into ``<evaluate.out>/syndgan_<name>/``
with the augment library's pairing and placement (``augment.seed``, ``augment.placement``): image k of a
class gets the same normal image and mask as image k of ``syndgan``.

Writes ``<evaluate.metrics>`` (JSON, DVC metrics), ``<evaluate.table>.md`` (both tables) and
``<evaluate.table>_synthesis.csv`` / ``_reconstruction.csv``, and ``<evaluate.out>/`` (ablation images).
Methods or models that are missing are listed under ``not_run`` with the reason; the stage still succeeds.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from pipeline.common import project_relative, read_json, stage_main
from pipeline.config import Params
from pipeline.reconstruction import collect_reconstruction
from syndgan.augment import create_method, generate_augmented
from syndgan.data.processed import NORMAL, ProcessedDataset, train_pool
from syndgan.errors import ImageError
from syndgan.io import atomic_dir, atomic_write_json, atomic_write_text
from syndgan.report.quality import FeatureCache, create_quality_metrics, synthesis_quality
from syndgan.report.tables import ABLATION_PREFIX, REAL_SET, markdown, reconstruction_table, synthesis_table

log = logging.getLogger("syndgan.evaluate")


def read_set(folder: Path, manifest: pd.DataFrame, classes: list[str], limit: int, mode: str) -> dict:
    """{class: [uint8 images]}: the first ``limit`` images of each class by rank."""
    out = {}
    for name in classes:
        rows = manifest[manifest["label"] == name].sort_values("rank").head(limit)
        out[name] = [_read(folder / rel, mode) for rel in rows["image"]]
    return out


def _read(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except OSError as e:
        raise ImageError(path, f"cannot read image: {e}") from None


def read_real(dataset: ProcessedDataset, rows: pd.DataFrame, classes: list[str]) -> dict:
    """{class: [images]} of the rows whose image label is that class."""
    return {c: [dataset.read_image(r) for r in rows[rows["label"] == c].sort_values("id")["image"]] for c in classes}


def read_manifest(folder: Path) -> pd.DataFrame | None:
    path = folder / "manifest.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def method_sets(params: Params, dataset: ProcessedDataset, not_run: dict) -> dict:
    """The augment outputs of ``evaluate.methods`` that hold images."""
    cfg = params.evaluate
    sets = {}
    for method in cfg.methods:
        folder = params.resolve(params.augment.out) / method
        info_path = folder / "augment.json"
        info = read_json(info_path, required=False)
        if info is None:
            not_run[method] = f"{project_relative(info_path)} not found (augment@{method} not run)"
            continue
        manifest = read_manifest(folder)
        if not info.get("produces_images", True) or manifest is None or manifest.empty:
            not_run[method] = f"{method} renders no images (applied at classifier training time)"
            continue
        sets[method] = read_set(folder, manifest, dataset.class_names, cfg.max_images_per_class, dataset.mode)
        log.info("%s: %s images per class", method, {c: len(v) for c, v in sets[method].items()})
    return sets


def synthesize_ablation(params: Params, dataset: ProcessedDataset, pool: pd.DataFrame, name: str, out: Path):
    """Images of ablation ``name``'s synthesizer with augment's pairing and placement; returns the manifest."""
    cfg, acfg = params.evaluate, params.augment
    ckpt = params.resolve(params.train_synth.ablation_out) / name / "synthesizer.pt"
    method = create_method("syndgan", checkpoint=str(ckpt), device=cfg.device)
    targets = dict.fromkeys(dataset.class_names, cfg.ablation_images_per_class)
    t0 = time.perf_counter()
    manifest = generate_augmented(dataset, method, targets, out, pool, acfg.placement, acfg.seed, progress=True)
    manifest.to_parquet(out / "manifest.parquet", index=False)
    log.info("%s: synthesized %d images in %.1f s", name, len(manifest), time.perf_counter() - t0)
    return manifest


def ablation_sets(params: Params, dataset: ProcessedDataset, pool: pd.DataFrame, not_run: dict, tmp: Path) -> dict:
    """Sets of the train_synth ablations: augment's images when present, else synthesized into ``tmp``."""
    cfg = params.evaluate
    sets, made = {}, {}
    for name in params.train_synth.ablations if cfg.ablations else []:
        set_name = f"{ABLATION_PREFIX}{name}"
        if set_name in cfg.methods:
            continue  # evaluated as a method
        ckpt = params.resolve(params.train_synth.ablation_out) / name / "synthesizer.pt"
        augmented = params.resolve(params.augment.out) / set_name
        manifest = read_manifest(augmented)
        if manifest is not None and not manifest.empty:
            folder = augmented
        elif not ckpt.is_file():
            not_run[set_name] = f"{project_relative(ckpt)} not found (train_synth_ablation@{name} not run)"
            continue
        elif cfg.ablation_images_per_class < 2:
            not_run[set_name] = "evaluate.ablation_images_per_class < 2: no images synthesized"
            continue
        else:
            folder = tmp / set_name
            manifest = synthesize_ablation(params, dataset, pool, name, folder)
            made[set_name] = {
                "checkpoint": project_relative(ckpt),
                "images": len(manifest),
                "seed": params.augment.seed,
            }
        sets[set_name] = read_set(folder, manifest, dataset.class_names, cfg.max_images_per_class, dataset.mode)
    # what this stage synthesized (also keeps <evaluate.out> a non-empty DVC output without ablations)
    (tmp / "synthesized.json").write_text(json.dumps(made, indent=2, sort_keys=True) + "\n")
    return sets


def run(params: Params) -> dict:
    cfg = params.evaluate
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    device = None if cfg.device == "auto" else cfg.device
    dataset = ProcessedDataset.load(params.resolve(params.rasterize.out))
    classes = dataset.class_names
    pool = train_pool(dataset)
    test = read_real(dataset, dataset.split("test"), classes)
    train = read_real(dataset, pool, classes)
    log.info("real defects per class: test %s, train %s", _counts(test), _counts(train))

    not_run: dict[str, str] = {}
    with atomic_dir(params.resolve(cfg.out)) as tmp:
        candidates = {REAL_SET: train, **method_sets(params, dataset, not_run)}
        candidates.update(ablation_sets(params, dataset, pool, not_run, tmp))
        metrics = create_quality_metrics(
            cfg.quality_metrics,
            kid_subsets=cfg.kid_subsets,
            kid_subset_size=cfg.kid_subset_size,
            seed=cfg.seed,
            ic_max_per_cluster=cfg.ic_max_per_cluster,
            batch_size=cfg.batch_size,
            device=device,
        )
        cache = FeatureCache()
        quality = synthesis_quality(
            test, candidates, train, metrics, classes, diversity={REAL_SET: test}, cache=cache
        )  # the real row's IC: the real test defects' own spread around the train defects
    names: dict[str, str] = {}
    for m in metrics:  # the tables show the first metric of each kind; the JSON holds every one
        names.setdefault(m.name.split("_", 1)[0], m.name)
    result = {
        "classes": classes,
        "metric_names": names,
        "reference": "real test defects (split == test), per class",
        "real_baseline": f"{REAL_SET}: real train defects (train pool) vs the same test defects",
        "max_images_per_class": cfg.max_images_per_class,
        "real_test_images": {c: len(v) for c, v in test.items()},
        "normal_train_images": int((pool["label"] == NORMAL).sum()),
        "sets": list(quality),  # display order (the JSON's keys are sorted)
        "synthesis": quality,
        "not_run": not_run,
        "reconstruction": collect_reconstruction(params),
    }
    atomic_write_json(params.resolve(cfg.metrics), result)
    write_tables(params, result)
    log.info(
        "evaluated %d sets (%d images through the feature extractor) in %.1f s; not run: %s",
        len(quality), cache.images, time.perf_counter() - t0, ", ".join(not_run) or "none",
    )  # fmt: skip
    return result


def write_tables(params: Params, result: dict) -> None:
    stem = str(params.resolve(params.evaluate.table))
    h1, rows1 = synthesis_table(result)
    h1c, rows1c = synthesis_table(result, per_class=True)
    h2, rows2 = reconstruction_table(result["reconstruction"])
    names = result["metric_names"]
    text = markdown(h1, rows1, f"Synthesis quality, all classes pooled ({', '.join(names.values())})")
    text += "\n" + markdown(h1c, rows1c, "Synthesis quality per class")
    text += "\n" + markdown(h2, rows2, "Reconstruction (real vs reconstructed, eval split of train_synth)")
    missing = {
        **result["not_run"],
        **{f"reconstruction {k}": v for k, v in result["reconstruction"]["not_run"].items()},
    }
    if missing:
        text += "\nNot run: " + "; ".join(f"{k}: {v}" for k, v in missing.items()) + "\n"
    atomic_write_text(f"{stem}.md", text)
    flat = [{"set": s, "class": c, **e} for s, by_class in result["synthesis"].items() for c, e in by_class.items()]
    atomic_write_text(f"{stem}_synthesis.csv", pd.DataFrame(flat).to_csv(index=False))
    recon = [{"model": k, **v} for k, v in result["reconstruction"]["models"].items()]
    atomic_write_text(f"{stem}_reconstruction.csv", pd.DataFrame(recon).to_csv(index=False))
    log.info("\n%s", text)


def _counts(by_class: dict) -> dict:
    return {c: len(v) for c, v in by_class.items()}


def outputs(params: Params) -> list[str]:
    c = params.evaluate
    return [c.out, c.metrics, *(f"{c.table}{end}" for end in (".md", "_synthesis.csv", "_reconstruction.csv"))]


def main(argv: list[str] | None = None) -> int:
    return stage_main("evaluate", run, argv, __doc__, outputs=outputs)


if __name__ == "__main__":
    raise SystemExit(main())
