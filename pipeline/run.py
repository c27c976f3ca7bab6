"""Run the pipeline with another params file, in its own folder, without touching the DVC workspace.

    python -m pipeline.run --params data/configs/magnetic-tile.yaml --workdir runs/magnetic-tile

The params file is an overlay of the project's ``params.yaml``: it holds only what differs (sections merge
key by key; values, lists and free-form maps such as ``ingest.classes`` are replaced whole). The merged
result is written to ``<workdir>/params.yaml``.
Stages and their order come from ``dvc.yaml`` (``foreach``/``matrix`` expanded against *this* params file);
each stage's ``cmd`` runs with the work folder as current directory, so every relative output path of the
params file lands there. ``dvc repro`` stays the way to reproduce the default ``params.yaml``.
Environment: ``SYNDGAN_ROOT`` is set to the project folder, so params may say
``root: ${SYNDGAN_ROOT}/../shared/datasets/magnetic-tile``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import load_raw, parse_params
from syndgan.errors import ConfigError
from syndgan.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
_VAR = re.compile(r"\$\{([^}]+)\}")


def _lookup(ctx: dict, dotted: str) -> Any:
    cur: Any = ctx
    for part in dotted.strip().split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit():
            cur = cur[int(part)]
        else:
            raise ConfigError(
                f"dvc.yaml refers to ${{{dotted}}}, which the params (params.yaml + overlay) do not define"
            )
    return cur


def _interpolate(value: Any, ctx: dict) -> Any:
    if isinstance(value, str):
        m = _VAR.fullmatch(value.strip())
        if m:  # a whole-value reference keeps its type (lists for foreach)
            return _lookup(ctx, m.group(1))
        return _VAR.sub(lambda mm: str(_lookup(ctx, mm.group(1))), value)
    if isinstance(value, list):
        return [_interpolate(v, ctx) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v, ctx) for k, v in value.items()}
    return value


def expand_stages(dvc_yaml: dict, params: dict) -> list[tuple[str, str]]:
    """(stage name, command) in dvc.yaml order, with foreach/matrix expanded like DVC names them."""
    out = []
    for name, st in (dvc_yaml.get("stages") or {}).items():
        if "foreach" in st:
            items = _interpolate(st["foreach"], params)
            pairs = items.items() if isinstance(items, dict) else ((str(i), i) for i in items)
            for key, item in pairs:
                ctx = {**params, "item": item, "key": key}
                out.append((f"{name}@{key}", _interpolate(st["do"]["cmd"], ctx)))
        elif "matrix" in st:
            matrix = {k: _interpolate(v, params) for k, v in st["matrix"].items()}
            for combo in itertools.product(*matrix.values()):
                item = dict(zip(matrix, combo, strict=True))
                ctx = {**params, "item": item}
                out.append((f"{name}@" + "-".join(str(v) for v in combo), _interpolate(st["cmd"], ctx)))
        else:
            out.append((name, _interpolate(st["cmd"], params)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.run", description=__doc__.split("\n")[0])
    ap.add_argument("--params", required=True, type=Path, help="params file to run with")
    ap.add_argument("--workdir", required=True, type=Path, help="folder that receives every output")
    ap.add_argument("--from-stage", default=None, help="skip the stages before this one")
    ap.add_argument("--only", nargs="*", default=None, help="run just these stages (dvc names)")
    args = ap.parse_args(argv)

    try:
        params = load_raw(args.params, base=ROOT / "params.yaml")
        parse_params(params, args.params)  # a bad or unknown key: one line before any stage starts
        stages = expand_stages(yaml.safe_load((ROOT / "dvc.yaml").read_text()), params)
    except ConfigError as e:
        print(f"run: error: {e}", file=sys.stderr)
        return 1
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    # stages read ./params.yaml, as under DVC: the merged whole, which also records what ran
    atomic_write_text(workdir / "params.yaml", yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "SYNDGAN_ROOT": str(ROOT),
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    started = args.from_stage is None
    for name, cmd in stages:
        started = started or name == args.from_stage or name.split("@")[0] == args.from_stage
        if not started or (args.only is not None and name not in args.only and name.split("@")[0] not in args.only):
            continue
        print(f"==> {name}: {cmd}", flush=True)
        t0 = time.time()
        argv_ = shlex.split(cmd)
        if argv_[0] == "python":
            argv_[0] = sys.executable
        rc = subprocess.call(argv_, cwd=workdir, env=env)
        print(f"<== {name}: exit {rc} after {time.time() - t0:.1f} s", flush=True)
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
