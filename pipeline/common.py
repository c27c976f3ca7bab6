"""Shared plumbing for stage modules: argument parsing, logging, one-line errors, torchrun process groups, reading
other stages' JSON outputs, the trainings' resume states."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pipeline.config import Params, load_user_params
from syndgan.errors import DataError, SyndganError
from syndgan.io import remove_stale_temps


def stage_main(
    name: str,
    run: Callable[[Params], object],
    argv: list[str] | None = None,
    doc: str = "",
    outputs: Callable[[Params], Iterable[Path]] = lambda params: (),
) -> int:
    """Parse ``--params``, set up logging, call ``run(params)``; turn our errors into one line + exit 1.

    ``outputs``: this run's own files and folders (its dvc.yaml outs); temporaries a killed earlier run left
    there are removed first.
    """
    parser = argparse.ArgumentParser(prog=f"python -m pipeline.{name}", description=doc)
    parser.add_argument("--params", default="params.yaml", type=Path, help="params file (default: params.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    torchrun = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank = os.environ.get("RANK") if torchrun else None
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s " + (f"[rank {rank}] " if rank else "") + "%(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    # torch (~1 GB, seconds to import) only under torchrun: demo, ingest, rasterize and report never need it
    distributed = _distributed() if torchrun else None
    try:
        if distributed:
            distributed.init_from_env()  # join the process group (rank 0 writes the outputs)
        params = load_user_params(args.params)
        if rank in (None, "0"):  # the writer; other ranks must not race it
            for path in remove_stale_temps(params.resolve(p) for p in outputs(params)):
                logging.getLogger(f"syndgan.{name}").info("removed %s, left by an interrupted run", path)
        run(params)
    except SyndganError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 1
    finally:
        if distributed:
            distributed.shutdown()
    return 0


def _distributed():
    from syndgan.training import distributed

    return distributed


def is_writer() -> bool:
    """False on the ranks > 0 of a torchrun launch: only rank 0 writes stage outputs."""
    return _distributed().current().main


def read_json(path: Path, required: bool = True, hint: str = "") -> Any:
    """A JSON file another stage wrote. Missing: ``DataError`` ("not found; <hint>") when ``required``, else None
    (the caller's section or columns stay empty); invalid JSON is always a ``DataError`` naming the file."""
    if not path.is_file():
        if required:
            raise DataError(path, f"not found; {hint}" if hint else "not found")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(path, f"not valid JSON: {e}") from None


def project_relative(path: Path) -> str:
    """``path`` relative to the project root (the working directory) when inside it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# Resumable training states live here, outside every DVC output: DVC keeps no run cache for a stage with a
# persistent output, and a sibling project sharing the cache (pipeline/screen.py, scarcity.py) would retrain.
RESUME_ROOT = Path(".syndgan/resume")


def data_digest(params: Params) -> str:
    """sha256 of the tables a GAN stage's images come from (rasterize's index and dataset.json with the k-shot
    pool; ingest's manifest and annotations where present): stored in a resume state, so that a state trained on
    other data is not continued."""
    processed, interim = params.resolve(params.rasterize.out), params.resolve(params.ingest.out)
    h = hashlib.sha256()
    for path in (processed / "index.parquet", processed / "dataset.json", interim / "manifest.parquet",
                 interim / "annotations.parquet"):  # fmt: skip
        if path.is_file():
            h.update(f"{path.name}\n".encode() + path.read_bytes())
    return h.hexdigest()


def finish_resume(folder: Path) -> None:
    """The run wrote its outputs: drop its resume state. A later run starts from scratch (a state stays resumable
    across bookkeeping settings such as ``steps``, so a longer run would otherwise continue this one), and a
    finished training keeps no optimizer state on disk. Rank 0 only."""
    if is_writer():
        shutil.rmtree(folder, ignore_errors=True)
