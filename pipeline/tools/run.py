"""Run the pipeline with another params file, in its own folder, without touching the DVC workspace.

    python -m pipeline.tools.run --params data/configs/magnetic-tile.yaml --workdir runs/magnetic-tile

The params file is an overlay of the project's ``params.yaml``: it holds only what differs (sections merge
key by key; values, lists and free-form maps such as ``ingest.classes`` are replaced whole). The work
folder becomes a DVC project of its own (``dvc init --no-scm``): the merged params as ``params.yaml`` and
this project's ``dvc.yaml`` with its code paths made absolute (and, with no git there, every output in DVC's
cache), so DVC itself expands the stages, orders them, caches each finished one and, after a kill or a changed
setting, reruns only what is out of date.
``dvc repro`` at the project root stays the way to reproduce the default ``params.yaml``.
Environment: ``SYNDGAN_ROOT`` is set to the project folder, so params may say
``root: ${SYNDGAN_ROOT}/../shared/datasets/magnetic-tile``.

The same machinery lays out the scarcity benchmark's project (``pipeline.experiments.scarcity``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.config import Params, load_raw, parse_params
from pipeline.methods import augment_items, validate
from pipeline.tools.codedeps import is_code
from syndgan.errors import ConfigError
from syndgan.io import atomic_write_text

ROOT = Path(__file__).resolve().parents[2]
DVC = [sys.executable, "-m", "dvc"]


def absolute_code_paths(node):
    """Code paths (deps, foreach items) point back at this project: a work folder holds data only."""
    if is_code(node):
        return str(ROOT / node)
    if isinstance(node, dict):
        return {k: absolute_code_paths(v) for k, v in node.items()}  # keys are names (augment@syndgan)
    if isinstance(node, list):
        return [absolute_code_paths(v) for v in node]
    return node


def cache_every_out(stage: dict) -> dict:
    """``stage`` with no ``cache: false`` on its ``outs``: a work folder has no git to hold such a file, and DVC
    saves no run cache for a stage with one (outside ``metrics``/``plots``), so a project sharing the cache
    (``pipeline.experiments.screen``) could not restore the stage."""
    if "do" in stage:  # foreach
        return {**stage, "do": cache_every_out(stage["do"])}
    if "outs" not in stage:
        return stage
    outs = []
    for out in stage["outs"]:
        if isinstance(out, dict):
            ((path, opts),) = out.items()
            opts = {k: v for k, v in (opts or {}).items() if k != "cache"}
            out = {path: opts} if opts else path
        outs.append(out)
    return {**stage, "outs": outs}


def project_pipeline() -> dict:
    """This project's ``dvc.yaml`` with absolute code paths (stages and top-level plots) and every ``outs`` entry
    cached (``cache_every_out``)."""
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))
    stages = {name: cache_every_out(absolute_code_paths(st)) for name, st in pipeline["stages"].items()}
    return {**pipeline, "stages": stages}


def init_project(workdir: Path) -> None:
    """``workdir`` as a DVC project without git (kept as is when it already is one)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if not (workdir / ".dvc").is_dir():
        subprocess.run([*DVC, "init", "--no-scm", "-q"], cwd=workdir, check=True)


def write_if_changed(path: Path, text: str) -> None:
    """Leave an unchanged file alone (DVC and readers see no new write)."""
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text)


def dvc_env() -> dict[str, str]:
    """Environment of ``dvc repro`` in a work folder: stages run this python and import this project."""
    env = {**os.environ, "SYNDGAN_ROOT": str(ROOT), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def project_pipeline_for(params: Params) -> dict:
    """``project_pipeline`` with an augment stage per method ``params`` makes (an overlay may name others)."""
    pipeline = project_pipeline()
    augment = pipeline["stages"]["augment"]
    augment["foreach"] = absolute_code_paths(augment_items(params))
    return pipeline


def write_run_project(workdir: Path, params: dict) -> None:
    """Lay out (or refresh) ``workdir`` as the DVC project of one params file (merged)."""
    init_project(workdir)
    (workdir / "data" / "raw").mkdir(parents=True, exist_ok=True)  # ingest's watched input folder
    # stages read ./params.yaml, as under DVC at the root: the merged whole, which also records what ran
    write_if_changed(workdir / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    typed = parse_params(params, workdir / "params.yaml")
    write_if_changed(workdir / "dvc.yaml", yaml.safe_dump(project_pipeline_for(typed), sort_keys=False))


def repro_command(only: list[str] | None, from_stage: str | None) -> list[str]:
    if only:  # just these stages (or foreach/matrix groups), not what they depend on
        return [*DVC, "repro", "--single-item", *only]
    if from_stage:  # this stage and everything downstream of it
        return [*DVC, "repro", "--downstream", from_stage]
    return [*DVC, "repro"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.tools.run", description=__doc__.split("\n")[0])
    ap.add_argument("--params", required=True, type=Path, help="params file to run with")
    ap.add_argument("--workdir", required=True, type=Path, help="folder that receives every output")
    ap.add_argument("--from-stage", default=None, help="run this stage and the stages downstream of it")
    ap.add_argument("--only", nargs="*", default=None, help="run just these stages (dvc names)")
    args = ap.parse_args(argv)

    try:
        params = load_raw(args.params, base=ROOT / "params.yaml")
        validate(parse_params(params, args.params))  # a bad or unknown key: one line before any stage starts
    except ConfigError as e:
        print(f"run: error: {e}", file=sys.stderr)
        return 1
    workdir = args.workdir.resolve()
    write_run_project(workdir, params)
    cmd = repro_command(args.only, args.from_stage)
    print(f"==> {workdir}: dvc {' '.join(cmd[3:])}", flush=True)
    return subprocess.call(cmd, cwd=workdir, env=dvc_env())


if __name__ == "__main__":
    raise SystemExit(main())
