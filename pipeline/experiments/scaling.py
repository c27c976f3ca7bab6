"""The scaling study (issue 31): does SyNDGAN get better with compute? One long synthesis training measured at
every budget.

    python -m pipeline.experiments.scaling --params data/configs/magnetic-tile.yaml data/configs/scarcity-magnetic-tile.yaml \
        data/configs/scarcity-magnetic-tile-chosen.yaml data/configs/scaling-magnetic-tile.yaml [--phase chain]

The params files are overlays of params.yaml, as for ``pipeline.experiments.scarcity``, whose project this lays out (one k:
``scarcity.ks``' single value) in ``<workdir>/k<k>/``. Phases, each resumable and each skipping what is done:

- ``base``: ``dvc repro pretrain`` there (once), and the classifier cells of every method but ``syndgan`` (their
  val macro-F1 are the lines the curve is read against); syndgan's cells are this study's, one set per budget.
- ``chain``: one synthesis training from that pretraining, continued budget after budget (``--steps``, e.g. 1x,
  2x, 4x and 8x of 600): the training state (weights, optimizers, EMA, RNG) is kept in ``chain/state.pt``, so the
  snapshot at 2x is the same network a single 2x run ends with, and a kill resumes from its last checkpoint. Each
  budget writes ``chain/steps<N>/`` (``synthesizer.pt``, ``summary.json`` with the reconstruction distances on
  ``train_synth.eval_split``, which the study sets to val).
- ``measure``: for every budget the chain has reached, syndgan's augment set from that snapshot and its classifier
  cells (``classify.seeds``, ``classify.doses`` x ``classify.synthetic``, the dose and rule chosen on val), and
  fid / kid (``evaluate.quality_metrics``, EfficientNet features here) of the set against the real **val**
  defects, per class and pooled, into ``scaling/steps<N>/record.json``. Test is never read.
- ``publish`` (``--out``): ``scaling.json`` (one record per variant and budget, the reference methods' val lines),
  the figure of each quality figure against CPU-hours and a README with the table.

The other axes (more pretraining, 128 px, a wider generator or discriminator, ``d_resize: 224``) are variants:
``--variant NAME`` with one more overlay in ``--params`` lays out ``<workdir>/NAME/`` (a pretraining and chain of
its own), and ``publish`` gathers every variant measured under ``<workdir>``; the reference lines come from
the base study (same k, draw and classifier).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from pipeline.config import Params
from pipeline.experiments.scarcity import k_dir, write_project
from pipeline.tools.run import DVC, dvc_env
from syndgan.errors import ConfigError, DataError

log = logging.getLogger("syndgan.scaling")

PHASES = ("base", "chain", "measure", "publish")


@contextmanager
def inside(folder: Path):
    """Stage code resolves params paths against the working directory (as under DVC): run it in the project."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def layout(files: list[Path], workdir: Path) -> tuple[Params, Path]:
    params = write_project(files, workdir)
    if len(params.scarcity.ks) != 1:
        raise ConfigError(f"scaling: scarcity.ks must hold one k, got {params.scarcity.ks}")
    if "syndgan" not in params.classify.methods:
        raise ConfigError("scaling: classify.methods must hold syndgan (the project then keeps its pretraining)")
    return params, workdir / k_dir(params.scarcity.ks[0])


def base(params: Params, project: Path, references: bool = True) -> None:
    """The pretraining, through the project's own DVC pipeline, once: every snapshot of the chain continues from
    it, so a study never trains it again under itself (newer code would otherwise rerun it and orphan the chain).
    Then, for the base study, the reference methods' classifier cells, made as ``measure`` makes syndgan's."""
    if not (project / params.pretrain.out / "generator.pt").is_file():
        log.info("dvc repro pretrain in %s", project)
        rc = subprocess.call([*DVC, "repro", "pretrain"], cwd=project, env=dvc_env())
        if rc:
            raise DataError(project, f"dvc repro pretrain failed (exit {rc}); its log is above")
    if not references:
        return
    from pipeline import augment, classify

    with inside(project):
        params = load_project_params()  # the project's own (with its k_shot), as DVC's stages read it
        for m in [m for m in params.classify.methods if m != "syndgan"]:
            if not (params.resolve(params.augment.out) / m / "augment.json").is_file():
                augment.run(params, m)
            for seed in params.classify.seeds:
                if not (params.resolve(params.classify.out) / classify.run_name(m, seed) / "metrics.json").is_file():
                    classify.run(params, m, seed)


def chain(project: Path, budgets: list[int]) -> list[dict]:
    """Train the synthesis network on and on, writing a snapshot at each budget; the summaries, in order."""
    from pipeline.common import data_digest, read_json
    from pipeline.train_synth import build_datasets, settings_for
    from syndgan.data.processed import read_dataset_info
    from syndgan.training.synth import read_pretrained, train_synth

    summaries = []
    with inside(project):
        params = load_project_params()
        cfg = params.train_synth
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        pre_dir = params.resolve(params.pretrain.out)
        pre = read_pretrained(pre_dir / "generator.pt")
        resolution, channels = int(pre["generator"]["img_resolution"]), int(pre["generator"]["img_channels"])
        classes = read_dataset_info(params.resolve(params.rasterize.out))["classes"]
        train, val = build_datasets(params, resolution, channels, classes)
        out = Path("chain")
        for n in sorted(budgets):
            dest = out / f"steps{n}"
            if (dest / "summary.json").is_file():
                summaries.append(read_json(dest / "summary.json"))
                continue
            log.info("chain: training on to %d steps (%s)", n, dest)
            summary = train_synth(
                dataclasses.replace(settings_for(cfg), steps=n, progress=True),
                train,
                dest,
                generator_checkpoint=pre_dir / "generator.pt",
                discriminator_checkpoint=pre_dir / "discriminator.pt",
                classes=classes,
                eval_dataset=val,
                data={"mode": cfg.data_mode, "patch_size": cfg.patch_size if cfg.data_mode == "patch" else None},
                log_dir=dest,
                resume_path=out / "state.pt",
                data_digest=data_digest(params),
            )
            summaries.append(summary)
    return summaries


def budget_params(params: Params, n: int) -> Params:
    """The project's params with syndgan rendered from the snapshot at ``n`` steps into folders of its own."""
    r = dataclasses.replace
    folder = f"scaling/steps{n}"
    sections = params.augment.sections
    syndgan = {**sections.get("syndgan", {}), "checkpoint": f"chain/steps{n}/synthesizer.pt"}
    return r(
        params,
        augment=r(params.augment, out=f"{folder}/augmented", sections={**sections, "syndgan": syndgan}),
        classify=r(params.classify, out=f"{folder}/classify", plots=f"{folder}/plots"),
    )


def val_choice(cells: list[dict]) -> dict:
    """The dose x rule with the best mean val macro-F1 over the seeds' cells (``classify`` metrics.json files)."""
    keys = cells[0]["doses"]
    scores = {k: [c["doses"][k]["val_macro_f1"] for c in cells] for k in keys}
    best = max(scores, key=lambda k: sum(scores[k]) / len(scores[k]))
    vals = scores[best]
    mean = sum(vals) / len(vals)
    std = (sum((v - mean) ** 2 for v in vals) / max(len(vals) - 1, 1)) ** 0.5
    return {"dose": best, "val_macro_f1": mean, "val_macro_f1_std": std, "val_macro_f1_seeds": vals}


def cpu_hours(seconds: float, threads: int) -> float:
    return seconds * (threads or os.cpu_count() or 1) / 3600


def measure_budget(params: Params, n: int, variant: str) -> dict:
    """One budget's record (run inside the project); every cell it needs is made once and kept."""
    import pandas as pd

    from pipeline import augment, classify
    from pipeline.common import read_json
    from pipeline.evaluate import read_real, read_set
    from syndgan.data.processed import ProcessedDataset
    from syndgan.report.quality import create_quality_metrics, synthesis_quality

    p = budget_params(params, n)
    aug = params.resolve(p.augment.out) / "syndgan"
    if not (aug / "augment.json").is_file():
        augment.run(p, "syndgan")
    cells = []
    for seed in p.classify.seeds:
        path = params.resolve(p.classify.out) / classify.run_name("syndgan", seed) / "metrics.json"
        if not path.is_file():
            classify.run(p, "syndgan", seed)
        cells.append(read_json(path))
    dataset = ProcessedDataset.load(params.resolve(params.rasterize.out))
    classes, ev = dataset.class_names, params.evaluate
    real_val = read_real(dataset, dataset.split("val"), classes)
    made = read_set(aug, pd.read_parquet(aug / "manifest.parquet"), classes, ev.max_images_per_class, dataset.mode)
    metrics = create_quality_metrics(
        [m for m in ev.quality_metrics if m in ("fid", "kid")],
        kid_subsets=ev.kid_subsets, kid_subset_size=ev.kid_subset_size, seed=ev.seed, batch_size=ev.batch_size,
    )  # fmt: skip
    quality = synthesis_quality(real_val, {"syndgan": made}, real_val, metrics, classes)["syndgan"]
    chain_summary = read_json(Path(f"chain/steps{n}/summary.json"))
    pre = read_json(params.resolve(params.pretrain.out) / "summary.json")
    from pipeline.provenance import git_version

    return {
        "variant": variant,
        "code": git_version(Path(__file__).resolve().parents[2]),
        "pretrain_steps": int(pre["steps"]),
        "train_synth_steps": n,
        "resolution": int(chain_summary["resolution"]),
        # wall seconds of the training steps x threads: inflated when other jobs shared the cores
        "cpu_hours": cpu_hours(pre["train_seconds"], params.pretrain.threads)
        + cpu_hours(chain_summary["train_seconds"], params.train_synth.threads),
        "train_images": int(pre["images"]) + int(chain_summary["images"]),  # the cost that load cannot inflate
        **{k: v for k, v in chain_summary.items() if k.startswith("recon_")},
        "quality_reference": "real val defects",
        "quality": {cls: {k: v for k, v in e.items() if k != "notes"} for cls, e in quality.items()},
        **val_choice(cells),
    }


def measure(project: Path, budgets: list[int], variant: str) -> list[dict]:
    from pipeline.common import read_json
    from syndgan.io import atomic_write_json

    records = []
    with inside(project):
        for n in sorted(budgets):
            if not Path(f"chain/steps{n}/summary.json").is_file():
                log.info("measure: the chain has not reached %d steps yet", n)
                continue
            path = Path(f"scaling/steps{n}/record.json")
            if not path.is_file():
                log.info("measure: %d steps", n)
                atomic_write_json(path, measure_budget(load_project_params(), n, variant))
            records.append(read_json(path))
    return records


def load_project_params() -> Params:
    from pipeline.config import load_params

    return load_params("params.yaml")


def gathered(workdir: Path) -> list[dict]:
    """Every record measured under ``workdir``: the base study's and each variant's, base first, by budget."""
    from pipeline.common import read_json

    records = [read_json(p) for p in sorted(workdir.glob("**/scaling/steps*/record.json"))]
    return sorted(records, key=lambda r: (r.get("variant", "base") != "base", r.get("variant", "base"),
                                          r["pretrain_steps"], r["train_synth_steps"]))  # fmt: skip


def references(params: Params, project: Path) -> dict:
    """The other methods' val macro-F1 (their cells from the ``base`` phase), the lines the curve is read against."""
    from pipeline.classify import run_name
    from pipeline.common import read_json

    out = {}
    for m in params.classify.methods:
        if m == "syndgan":
            continue
        paths = [project / params.classify.out / run_name(m, s) / "metrics.json" for s in params.classify.seeds]
        if all(p.is_file() for p in paths):
            out[m] = val_choice([read_json(p) for p in paths])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.scaling", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, nargs="+", required=True)
    ap.add_argument("--workdir", type=Path, default=Path("runs/scaling-magnetic-tile"))
    ap.add_argument("--steps", type=int, nargs="+", default=[600, 1200, 2400, 4800], help="train_synth budgets")
    ap.add_argument("--phase", choices=PHASES, nargs="+", default=list(PHASES))
    ap.add_argument("--out", type=Path, default=Path("reports/magnetic-tile-scaling"), help="publish here")
    ap.add_argument("--variant", default="base", help="another axis: its own folder under --workdir (see above)")
    args = ap.parse_args(argv)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, datefmt="%H:%M:%S")
    try:
        top = args.workdir.resolve()
        folder = top if args.variant == "base" else top / args.variant
        params, project = layout([f.resolve() for f in args.params], folder)
        if "base" in args.phase:
            base(params, project, references=args.variant == "base")
        if "chain" in args.phase:
            for s in chain(project, args.steps):
                log.info("%d steps: %s", s["steps"], {k: round(v, 4) for k, v in s.items() if k.startswith("recon_")})
        if {"measure", "publish"} & set(args.phase):
            measure(project, args.steps, args.variant)
        if "publish" in args.phase:
            from pipeline.experiments.scaling_report import publish

            base_project = top / project.name  # the reference lines: the base study's cells
            publish(gathered(top), references(params, base_project), args.out, params.scarcity.dataset)
    except (ConfigError, DataError) as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
