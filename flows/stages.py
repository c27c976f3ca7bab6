"""Prefect tasks that run DVC stages, and the pieces both flows share.

Every stage runs through ``dvc repro --single-item <stage>`` in a subprocess whose output is streamed,
line by line, into the task's Prefect log. Tasks never cache or persist results (``NO_CACHE``,
``persist_result=False``): whether a stage is up to date is DVC's decision alone, from ``dvc.lock``.

DVC deletes a stage's outputs before running its command. When the command fails or the run is cancelled,
``run_stage`` puts the previous outputs back (``dvc checkout`` for cached outputs, a copy taken beforehand
for ``cache: false`` ones such as metrics files); a killed process is repaired by the next flow
(``flows.recovery``), so the last good artifacts and ``dvc.lock`` stay as they were. A cancel ends the
stage's task Cancelled, its message saying so and what was restored, instead of Prefect's "Crash detected!".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import TerminationSignal
from prefect.states import Cancelled, State

from flows.recovery import guarded_stage
from pipeline.config import load_params
from pipeline.tools.dvcgraph import StageGraph

DVC = [sys.executable, "-m", "dvc"]
METRICS_ARTIFACT = "syndgan-metrics"
REPORT_ARTIFACT = "syndgan-report"
REPORT_PATH = "reports/report.html"
_PROGRESS = re.compile(r"\d+%\|")  # a tqdm bar: logged at most every PROGRESS_EVERY seconds
PROGRESS_EVERY = 10.0


class StageFailed(RuntimeError):
    """A DVC stage exited non-zero; the message ends with the stage's last output lines."""


def project_root(project_dir: str | Path | None) -> Path:
    root = Path(project_dir or os.getcwd()).expanduser().resolve()
    if not (root / "dvc.yaml").is_file():
        raise FileNotFoundError(f"{root}: no dvc.yaml here (project_dir must be the DVC project root)")
    return root


def load_project_params(root: Path):
    """The project's params; the ``flows`` defaults when the project has no params.yaml."""
    path = root / "params.yaml"
    if not path.exists():
        from pipeline.config import Params

        return Params(path=path)
    return load_params(path)


def subprocess_env() -> dict[str, str]:
    """Stage commands say ``python``: make that this interpreter, whatever PATH the server was started with."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(PYTHONUNBUFFERED="1", DVC_NO_ANALYTICS="1")
    return env


def stream(cmd: list[str], cwd: Path, logger, on_line=None, on_start=None) -> tuple[int, list[str]]:
    """Run ``cmd``, sending each output line to ``logger`` (and ``on_line``); returns the exit code and the
    last 40 lines. ``on_start(pid)`` is called once the process exists."""
    tail: deque[str] = deque(maxlen=40)
    last_progress = -math.inf
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None
    if on_start is not None:
        on_start(proc.pid)
    for raw in proc.stdout:
        line = raw.rstrip()
        if not line.strip():
            continue
        tail.append(line)
        if on_line is not None:
            on_line(line)
        if _PROGRESS.search(line):
            now = time.monotonic()
            if now - last_progress < PROGRESS_EVERY and "100%|" not in line:
                continue
            last_progress = now
        (logger.error if line.startswith(("ERROR", "Traceback")) or ": error: " in line else logger.info)(line)
    return proc.wait(), list(tail)


_DVC_NOISE = ("ERROR: failed to reproduce", "Running stage", "> ", "Updating lock file", "Use `dvc push`")


def _failure_summary(tail: list[str]) -> str:
    """The stage's one-line error: the ``<stage>: error: ...`` line ``stage_main`` prints, else a DVC
    ``ERROR:`` of its own, else the exception line ending a traceback, else the last line that is not DVC's
    wrapper. Never a traceback or DVC's list of files."""
    own = [line for line in tail if not line.startswith(_DVC_NOISE)]
    for pick in (
        lambda line: ": error: " in line,
        lambda line: line.startswith("ERROR: "),
        lambda line: re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b.*:", line) is not None,
    ):
        hits = [line for line in own if pick(line)]
        if hits:
            return hits[-1].strip()
    return own[-1].strip() if own else "no output"


@task(name="dvc-stage", task_run_name="{stage}", cache_policy=NO_CACHE, persist_result=False)
def run_stage(
    project_dir: str,
    stage: str,
    force: bool = False,
    keep: list[str] | None = None,
    pull: bool = False,
    push: bool = False,
) -> dict[str, Any]:
    """``dvc repro --single-item <stage>``; ``keep``: non-cached outputs to put back if the stage fails.

    ``pull``: fetch missing cached inputs from the DVC remote first (``--pull``); ``push``: send the stage's
    outputs to the DVC remote afterwards (workers that share no disk share the remote instead).
    """
    logger = get_run_logger()
    root = Path(project_dir)
    cmd = [*DVC, "repro", "--single-item", *(["--force"] if force else []), *(["--pull"] if pull else []), stage]
    logger.info("$ dvc %s", " ".join(cmd[3:]))
    start = time.monotonic()
    ran = []
    guard = None
    try:
        with guarded_stage(root, stage, keep or [], logger) as guard:  # restores on failure and cancel
            rc, tail = stream(
                cmd,
                root,
                logger,
                on_line=lambda line: line.startswith("Running stage ") and ran.append(line),
                on_start=guard.started,
            )
            if rc != 0:  # the one-line error first: it is what the UI shows as the task's state message
                summary = _failure_summary(tail)
                logger.error("%s", summary)
                raise StageFailed(f"{summary} (stage '{stage}', dvc exit code {rc})")
    except TerminationSignal:
        if guard is None or guard.restored is None:
            raise  # interrupted before the stage started: nothing of it to report
        # Prefect raises the cancel's SIGTERM here. Let through, the task engine would log "Crash detected!"
        # and end the task Crashed; a returned state is the task's final one, saying what happened in one line.
        return Cancelled(message=f"{_termination_cause()}; {guard.restored}")
    if push:  # also when DVC skipped the stage: a retry after a failed push still pushes (cheap when present)
        rc, tail = stream([*DVC, "push", stage], root, logger)
        if rc != 0:
            raise StageFailed(f"{_failure_summary(tail)} (dvc push {stage}, exit code {rc})")
    return {"stage": stage, "ran": any(ran), "seconds": round(time.monotonic() - start, 2)}


def _termination_cause() -> str:
    """Why the flow process got SIGTERM: a cancel puts the flow run in Cancelling before the runner sends it."""
    from prefect import get_client
    from prefect.runtime import flow_run

    try:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
    except Exception:  # no answer: say only what is known
        state = None
    if state is not None and (state.is_cancelling() or state.is_cancelled()):
        return "cancelled by the user"
    return "stopped by a termination signal (SIGTERM)"


def run_stages(
    root: Path,
    graph: StageGraph,
    names: list[str],
    *,
    force: bool | Iterable[str] = False,
    retries: int = 0,
    retry_delay_seconds: float = 0,
    pull: bool = False,
    push: bool = False,
    after_each=None,
) -> list[dict[str, Any]]:
    """Run ``names`` one task each, in order; ``force``: all of them, or the named ones.

    A failing stage raises (after its retries) and later stages do not start. ``after_each(name, results)``
    is called after each stage with the results so far.
    """
    forced = set(names) if force is True else set(force or ())
    task_ = run_stage.with_options(retries=retries, retry_delay_seconds=retry_delay_seconds)
    results = []
    for name in names:
        keep = [str(o.path) for o in graph.stages[name].outs if not o.cached and not o.persist]
        result = task_(str(root), name, force=name in forced, keep=keep, pull=pull, push=push)
        if isinstance(result, State):  # the stage absorbed the cancel's signal (run_stage): end the run as
            raise TerminationSignal(signal.SIGTERM)  # Prefect does (Cancelled, cancellation hooks)
        results.append(result)
        if after_each is not None:
            after_each(name, results)
    return results


@contextlib.contextmanager
def project_lock(root: Path, logger, poll: float = 2.0) -> Iterator[None]:
    """One flow at a time per project: a scheduled retrain waits for a running reproduce, and vice versa.

    (DVC would otherwise refuse the second one half-way with 'Unable to acquire lock'.)
    """
    path = root / ".syndgan" / "flow.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        waited = 0.0
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited % 60 == 0:
                    logger.info("another syndgan flow is running on %s; waiting for it to finish", root)
                time.sleep(poll)
                waited += poll
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- metrics artifact


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list):
        text = json.dumps(obj)
        return {prefix: text if len(text) <= 60 else text[:57] + "..."}
    return {prefix: obj}


def collect_metrics(root: Path) -> dict[str, dict[str, Any]]:
    """The files ``dvc metrics show`` lists (the headline metrics, not the detailed outputs) -> flat
    {metric: value} per file, in DVC's order."""
    found: dict[str, dict[str, Any]] = {}
    proc = subprocess.run(
        [*DVC, "metrics", "show", "--json"], cwd=root, env=subprocess_env(), capture_output=True, text=True
    )
    try:
        shown = json.loads(proc.stdout) if proc.returncode == 0 and proc.stdout.strip() else {}
    except ValueError:
        shown = {}
    for rev in shown.values():  # one entry: the workspace ("" or "workspace")
        for path, entry in (rev.get("data") or {}).items():
            if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
                found[Path(path).as_posix()] = _flatten(entry["data"])
    return found


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def stale_outputs(root: Path, graph: StageGraph, results: list[dict[str, Any]]) -> list[str]:
    """Outputs of stages downstream of one that ran in this flow run but not run themselves (an ingest-only
    run leaves classify's metrics from an older build): relative paths."""
    done = {r["stage"] for r in results}
    ran = [r["stage"] for r in results if r["ran"]]
    stale = [n for n in graph.downstream_of(ran) if n not in done] if ran else []
    return sorted({o.path.relative_to(root).as_posix() for n in stale for o in graph.stages[n].outs})


def _under_any(path: str, outs: Iterable[str]) -> bool:
    return any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs)


def metrics_table(metrics: dict[str, dict[str, Any]], stale: Iterable[str] = ()) -> list[dict[str, str]]:
    """One row per current metrics file (its name without folder and ``.json`` first: the method), one
    column per metric, as ``dvc metrics show`` prints them; files under ``stale`` outputs are left out."""
    current = {f: v for f, v in metrics.items() if not _under_any(f, stale)}
    columns = sorted({k for values in current.values() for k in values})
    return [
        {"row": Path(f).stem, **{k: _fmt(values[k]) if k in values else "" for k in columns}, "file": f}
        for f, values in current.items()
    ]


def metrics_description(
    metrics: dict[str, dict[str, Any]], results: list[dict[str, Any]], report: Path | None, stale: Iterable[str] = ()
) -> str:
    """What the table is: the stages run and skipped, the files left out as stale, the report's address."""
    ran = [r["stage"] for r in results if r.get("ran")]
    skipped = [r["stage"] for r in results if not r.get("ran")]
    lines = [f"Stages run: {', '.join(ran) or 'none'}; up to date (skipped by DVC): {', '.join(skipped) or 'none'}."]
    old = [f for f in metrics if _under_any(f, stale)]
    if old:
        shown = ", ".join(f"`{f}`" for f in old)
        lines.append(f"Not listed, from an older build (a stage upstream ran in this run, theirs did not): {shown}.")
    if not metrics:
        lines.append("No metrics yet (no stage's metrics file exists).")
    if report is not None:
        lines.append(f"Report: [{REPORT_PATH}]({report.as_uri()})")
    return "\n\n".join(lines)


def publish_metrics(root: Path, graph: StageGraph, results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A table artifact with the metrics ``dvc metrics show`` lists (and a link artifact to the report when
    it exists); returns the metrics listed (stale ones left out)."""
    logger = get_run_logger()
    stale = stale_outputs(root, graph, results)
    metrics = collect_metrics(root)
    report = root / REPORT_PATH
    report = report if report.is_file() else None
    create_table_artifact(
        key=METRICS_ARTIFACT,
        table=metrics_table(metrics, stale),
        description=metrics_description(metrics, results, report, stale),
    )
    if report is not None:
        create_link_artifact(
            key=REPORT_ARTIFACT, link=report.as_uri(), link_text=REPORT_PATH, description="HTML report"
        )
    metrics = {f: v for f, v in metrics.items() if not _under_any(f, stale)}
    logger.info("metrics artifact '%s': %d file(s)", METRICS_ARTIFACT, len(metrics))
    return metrics
