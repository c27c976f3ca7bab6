"""The scaling study (issue 31): does SyNDGAN get better with compute? One long synthesis training measured at
every budget.

    python -m pipeline.scaling --params data/configs/magnetic-tile.yaml data/configs/scarcity-magnetic-tile.yaml \
        data/configs/scarcity-magnetic-tile-chosen.yaml data/configs/scaling-magnetic-tile.yaml [--phase chain]

The params files are overlays of params.yaml, as for ``pipeline.scarcity``, whose project this lays out (one k:
``scarcity.ks``' single value) in ``<workdir>/k<k>/``. Phases, each resumable and each skipping what is done:

- ``base``: ``dvc repro`` there of pretraining and of the classifier cells of every method but ``syndgan`` (their
  val macro-F1 are the lines the curve is read against); syndgan's cells are this study's, one set per budget.
- ``chain``: one synthesis training from that pretraining, continued budget after budget (``--steps``, e.g. 1x,
  2x, 4x and 8x of 600): the training state (weights, optimizers, EMA, RNG) is kept in ``chain/state.pt``, so the
  snapshot at 2x is the same network a single 2x run ends with, and a kill resumes from its last checkpoint. Each
  budget writes ``chain/steps<N>/`` (``synthesizer.pt``, ``summary.json`` with the reconstruction distances on
  ``train_synth.eval_split``, which the study sets to val).
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
from pipeline.run import DVC, dvc_env
from pipeline.scarcity import k_dir, write_project
from syndgan.errors import ConfigError, DataError

log = logging.getLogger("syndgan.scaling")

PHASES = ("base", "chain")


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


def base(params: Params, project: Path) -> None:
    """Pretraining and the reference methods' classifier cells, through the project's own DVC pipeline."""
    refs = [m for m in params.classify.methods if m != "syndgan"]
    for targets in (["pretrain"], [f"classify@{m}-{s}" for m in refs for s in params.classify.seeds]):
        log.info("dvc repro %s in %s", " ".join(targets), project)
        rc = subprocess.call([*DVC, "repro", *targets], cwd=project, env=dvc_env())
        if rc:
            raise DataError(project, f"dvc repro {' '.join(targets)} failed (exit {rc}); its log is above")


def chain(project: Path, budgets: list[int]) -> list[dict]:
    """Train the synthesis network on and on, writing a snapshot at each budget; the summaries, in order."""
    from pipeline.common import data_digest, read_json
    from pipeline.config import load_params
    from pipeline.train_synth import build_datasets, settings_for
    from syndgan.data.processed import read_dataset_info
    from syndgan.training.synth import read_pretrained, train_synth

    summaries = []
    with inside(project):
        params = load_params("params.yaml")
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
                data={"mode": cfg.data_mode, "patch_size": None},
                log_dir=dest,
                resume_path=out / "state.pt",
                data_digest=data_digest(params),
            )
            summaries.append(summary)
    return summaries


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.scaling", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, nargs="+", required=True)
    ap.add_argument("--workdir", type=Path, default=Path("runs/scaling-magnetic-tile"))
    ap.add_argument("--steps", type=int, nargs="+", default=[600, 1200, 2400, 4800], help="train_synth budgets")
    ap.add_argument("--phase", choices=PHASES, nargs="+", default=list(PHASES))
    args = ap.parse_args(argv)
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=logging.INFO, format=fmt, datefmt="%H:%M:%S")
    try:
        params, project = layout([f.resolve() for f in args.params], args.workdir.resolve())
        if "base" in args.phase:
            base(params, project)
        if "chain" in args.phase:
            for s in chain(project, args.steps):
                log.info("%d steps: %s", s["steps"], {k: round(v, 4) for k, v in s.items() if k.startswith("recon_")})
    except (ConfigError, DataError) as e:
        print(f"scaling: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
