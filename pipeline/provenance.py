"""What a report was made from: the code version (commit, dirty or not) and which stages' outputs exist.

A stage "ran" when its output is here: the report states what it read, not what params.yaml would run.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from pipeline.common import read_json
from pipeline.config import Params
from pipeline.reconstruction import collect_reconstruction

DIRTY_FILES_SHOWN = 5


def dvc_output_paths(root: Path) -> set[str]:
    """``dvc.lock`` and every output it records (cache: false metrics, tables and plots are git-tracked and
    rewritten by the stages: they are results, not code)."""
    lock = root / "dvc.lock"
    paths = {"dvc.lock"}
    try:
        doc = yaml.safe_load(lock.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return paths
    for stage in (doc.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            if isinstance(out, dict) and out.get("path"):
                paths.add(Path(out["path"]).as_posix().rstrip("/"))
    return paths


def _is_output(path: str, outputs: set[str]) -> bool:
    return any(path == o or path.startswith(o + "/") for o in outputs)


def git_version(cwd: Path | None = None) -> str:
    """``<commit> (clean)`` or ``<commit> (dirty: <changed tracked files>)``. Untracked files and the DVC
    outputs in ``dvc.lock`` do not count: a ``dvc repro`` from a clean checkout rewrites tracked metrics
    files before this stage runs, and its report must still name the clean commit."""
    # by default the code's own checkout: a work folder (pipeline.run, the scarcity benchmark) may lie inside
    # another checkout, whose commit is not the code that ran
    root = Path(cwd or Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True, timeout=20, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--no-renames", "--", "."],
            cwd=root, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout, or git is not installed)"
    prefix = root.resolve().relative_to(Path(top).resolve()).as_posix()  # porcelain paths are from the top
    prefix = "" if prefix == "." else prefix + "/"
    outputs = dvc_output_paths(root)
    changed = []
    for line in status.splitlines():
        path = line[3:].strip().strip('"')
        rel = path[len(prefix) :] if prefix and path.startswith(prefix) else path
        if not _is_output(rel, outputs):
            changed.append(rel)
    if not changed:
        return f"{commit} (clean)"
    shown = ", ".join(changed[:DIRTY_FILES_SHOWN]) + (
        f" and {len(changed) - DIRTY_FILES_SHOWN} more" if len(changed) > DIRTY_FILES_SHOWN else ""
    )
    return f"{commit} (dirty: uncommitted changes to {shown})"


def stage_outputs(params: Params) -> dict[str, Path]:
    """The file whose presence shows that a stage ran, per stage (ablations and methods one each)."""
    ts, c = params.train_synth, params.classify
    found = {
        "pretrain": params.resolve(params.pretrain.metrics),
        "train_synth": params.resolve(ts.metrics),
    }
    ablations = params.resolve(ts.ablation_metrics)
    names = dict.fromkeys(
        [*ts.ablations, *(sorted(p.stem for p in ablations.glob("*.json")) if ablations.is_dir() else [])]
    )
    found.update({f"train_synth_ablation@{a}": ablations / f"{a}.json" for a in names})
    if "generation" in c.methods:
        found["train_generation"] = params.resolve(params.train_generation.out) / "summary.json"
    found.update({f"augment@{m}": params.resolve(params.augment.out) / m / "augment.json" for m in c.methods})
    found["classify_aggregate"] = params.resolve(c.metrics)
    found["evaluate"] = params.resolve(params.evaluate.metrics)
    return found


def what_ran(params: Params) -> tuple[list[str], list[str]]:
    """(stages whose output is present, stages whose output is not), in pipeline order."""
    outputs = stage_outputs(params)
    return [s for s, p in outputs.items() if p.is_file()], [s for s, p in outputs.items() if not p.is_file()]


def reconstruction_inputs(params: Params) -> dict:
    """Reconstruction metrics of every synthesis network whose metrics file is here: evaluate's copy first, then
    train_synth's own files, including ablations run under earlier params or after evaluate (their rows are
    shown, not dropped because params.yaml no longer lists them)."""
    recon = collect_reconstruction(params)
    folder = params.resolve(params.train_synth.ablation_metrics)
    for extra in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if extra.stem not in recon["models"]:
            recon["models"][extra.stem] = read_json(extra)
            recon["order"].append(extra.stem)
    evaluated = read_json(params.resolve(params.evaluate.metrics), required=False)
    if evaluated is None:
        return recon
    ev = evaluated.get("reconstruction", {})
    models = {**recon["models"], **ev.get("models", {})}
    return {
        "perceptual": ev.get("perceptual") or recon["perceptual"],
        "models": models,
        "not_run": {k: v for k, v in {**recon["not_run"], **ev.get("not_run", {})}.items() if k not in models},
        "order": list(dict.fromkeys([*ev.get("order", []), *recon["order"]])),
    }
