"""What a report was made from: the code version (commit, dirty or not) and the stages whose outputs it read.

The report names the stages of what it read, not what params.yaml would run; a stage params would run whose
output is absent is "not run".
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

import yaml

from pipeline.config import Params
from pipeline.methods import trainings

DIRTY_FILES_SHOWN = 5
CODE_ROOT = Path(__file__).resolve().parent.parent


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
    root = Path(cwd or CODE_ROOT)
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
    if "train_generation" in trainings(c.methods):  # runs only for a compared method that samples its generators
        found["train_generation"] = params.resolve(params.train_generation.out) / "summary.json"
    found.update({f"augment@{m}": params.resolve(params.augment.out) / m / "augment.json" for m in c.methods})
    found["classify_aggregate"] = params.resolve(c.metrics)
    found["evaluate"] = params.resolve(params.evaluate.metrics)
    return found


def synthesis_stage(name: str) -> str:
    """The stage that trains synthesis network ``name``: ``syndgan`` is train_synth's, any other an ablation."""
    return "train_synth" if name == "syndgan" else f"train_synth_ablation@{name}"


def trained_by(params: Params, checkpoint: str | Path) -> str | None:
    """The training stage whose output ``checkpoint`` is (the network an augment method draws with); None for none."""
    ckpt, ts = params.resolve(checkpoint), params.train_synth
    if ckpt.parent.parent == params.resolve(ts.ablation_out):
        return synthesis_stage(ckpt.parent.name)
    folders = {ts.out: "train_synth", params.train_generation.out: "train_generation"}
    return next((stage for f, stage in folders.items() if ckpt.is_relative_to(params.resolve(f))), None)


def pipeline_order(stages: Iterable[str]) -> list[str]:
    """``stages`` (DVC names: ``augment@syndgan``) once each, their stages or foreach groups in ``dvc.yaml``'s
    order (the code checkout's: a work folder's is a copy), within a group as given."""
    try:
        groups = list((yaml.safe_load((CODE_ROOT / "dvc.yaml").read_text(encoding="utf-8")) or {})["stages"])
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        groups = []
    rank = {g: i for i, g in enumerate(groups)}
    return sorted(dict.fromkeys(stages), key=lambda s: rank.get(s.split("@")[0], len(rank)))


def what_ran(params: Params, read: Iterable[str]) -> tuple[list[str], list[str]]:
    """(the stages of what the report read, in pipeline order; the stages params would run whose output is absent
    and that the report read nothing of)."""
    ran = pipeline_order(read)
    return ran, [s for s, p in stage_outputs(params).items() if s not in ran and not p.is_file()]
