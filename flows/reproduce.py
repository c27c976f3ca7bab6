"""``reproduce``: the DVC pipeline as one Prefect task per stage, in the order DVC derives from dvc.yaml.

Parameters:
- ``target``: a stage (or foreach / matrix group); only it and what it depends on run. Default: all.
- ``params``: ``{"rasterize.resolution": 64, ...}`` overrides, applied exactly as ``dvc exp run -S`` applies
  them (DVC's own Hydra override code, so ``+new.key=...`` / ``~key`` work too) and recorded with the
  results as a DVC experiment (``dvc exp save``): ``dvc exp show`` lists it next to its metrics.
- ``force``: rerun the selected stages even when DVC finds them up to date.

After ``headline`` (or at the end when there is no headline stage) a table artifact holds the metrics that
``dvc metrics show`` lists.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from flows.recovery import recover, recovery_hook
from flows.stages import DVC, load_project_params, project_lock, project_root, publish_metrics, run_stages, stream
from pipeline.config import load_params
from pipeline.tools.dvcgraph import load_graph

METRICS_AFTER = "headline"  # the metrics artifact is published as soon as this stage (group) has run

_PLAIN = re.compile(r"[A-Za-z_][\w.\-/]*")
_RESERVED = {"true", "false", "null", "nan", "inf"}


def hydra_value(value: Any) -> str:
    """A Python value in Hydra's override grammar (what ``dvc exp run -S key=<value>`` parses)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{hydra_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if _PLAIN.fullmatch(text) and text.lower() not in _RESERVED:
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_overrides(params: dict[str, Any]) -> list[str]:
    """``{"a.b": 1}`` -> ``["a.b=1"]``; keys may carry DVC's ``file.yaml:`` prefix or Hydra's ``+`` / ``~``."""
    return [
        key if key.startswith("~") and value is None else f"{key}={hydra_value(value)}" for key, value in params.items()
    ]


def _git_head(root: Path) -> bool:
    proc = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=root, capture_output=True)
    return proc.returncode == 0


@task(name="apply-params", task_run_name="apply-params", cache_policy=NO_CACHE, persist_result=False)
def apply_params(project_dir: str, overrides: list[str]) -> list[str]:
    """Edit the params files like ``dvc exp run -S`` does, then validate; on a bad value nothing is changed."""
    from dvc.exceptions import InvalidArgumentError
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    logger = get_run_logger()
    root = Path(project_dir)
    if not _git_head(root):
        raise RuntimeError(
            f"{root}: params overrides are recorded as a DVC experiment, which needs a git repository with a commit"
        )
    originals: dict[Path, bytes] = {}
    try:
        for rel, file_overrides in to_path_overrides(overrides).items():
            path = root / rel
            originals.setdefault(path, path.read_bytes())
            try:
                apply_overrides(path, file_overrides)
            except InvalidArgumentError as e:  # Hydra's reason is in the cause ("Key 'x' is not in struct")
                reason = " ".join(str(e.__cause__ or e).split())
                raise ValueError(f"{rel}: invalid params override {' '.join(file_overrides)}: {reason}") from None
            logger.info("%s: %s", rel, " ".join(file_overrides))
        if (root / "params.yaml").exists():
            load_params(root / "params.yaml")  # unknown keys and out-of-range values fail here, not mid-pipeline
    except BaseException:  # a cancel (a termination signal) too: never leave half-applied params
        for path, data in originals.items():
            path.write_bytes(data)
        raise
    return overrides


@task(name="dvc-exp-save", task_run_name="dvc-exp-save", cache_policy=NO_CACHE, persist_result=False)
def exp_save(project_dir: str, name: str) -> str:
    logger = get_run_logger()
    rc, tail = stream([*DVC, "exp", "save", "--force", "--name", name], Path(project_dir), logger)
    if rc != 0:
        raise RuntimeError(f"dvc exp save failed ({rc}): {' | '.join(tail[-3:])}")
    return name


# a cancel or crash restores a half-run stage at once (and the next run would too)
@flow(
    name="reproduce", persist_result=False, log_prints=True, on_cancellation=[recovery_hook], on_crashed=[recovery_hook]
)
def reproduce(
    project_dir: str | None = None,
    target: str | None = None,
    params: dict[str, Any] | None = None,
    force: bool = False,
    retries: int | None = None,
) -> dict[str, Any]:
    """Reproduce the DVC pipeline (or ``target`` and its upstream), one Prefect task per stage."""
    logger = get_run_logger()
    root = project_root(project_dir)
    flows_cfg = load_project_params(root).flows
    retries = flows_cfg.retries if retries is None else retries
    with project_lock(root, logger):
        recover(root, logger)
        overrides = apply_params(str(root), to_overrides(params)) if params else []
        graph = load_graph(root)
        names = graph.upstream_of([target]) if target else graph.order
        logger.info("stages (from dvc.yaml, in dependency order): %s", ", ".join(names))
        last_evaluate = max((i for i, n in enumerate(names) if graph.stages[n].group == METRICS_AFTER), default=None)
        published: dict[str, Any] = {}

        def after_each(name: str, results: list[dict[str, Any]]) -> None:
            if last_evaluate is not None and name == names[last_evaluate]:
                published["metrics"] = publish_metrics(root, graph, results)

        results = run_stages(
            root,
            graph,
            names,
            force=force,
            retries=retries,
            retry_delay_seconds=flows_cfg.retry_delay_seconds,
            pull=flows_cfg.dvc_pull,
            push=flows_cfg.dvc_push,
            after_each=after_each,
        )
        if "metrics" not in published:
            published["metrics"] = publish_metrics(root, graph, results)
        experiment = exp_save(str(root), f"reproduce-{flow_run.name or 'run'}") if overrides else None
    return {"stages": results, "metrics": published["metrics"], "experiment": experiment, "params": overrides}


if __name__ == "__main__":
    reproduce()
