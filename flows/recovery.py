"""A stage that does not finish - failed, cancelled, crashed or killed - leaves the last good state.

DVC deletes a stage's outputs before running its command and writes ``dvc.lock`` only after it succeeded.
Before a stage runs, ``guarded_stage`` copies its ``cache: false`` outputs (metrics, plots) and ``dvc.lock``
into ``.dvc/tmp/`` and writes a journal, ``.syndgan/running/<stage>.json``, naming the copies and the DVC
process. Any exception in the flow process (a failed stage, or the ``TerminationSignal`` Prefect raises on
the SIGTERM of a cancel) stops DVC and restores at once. A process that dies without running Python
(SIGKILL, a lost worker) leaves the journal: ``recover`` restores from it at the start of the next flow on
the project and in the flows' cancellation and crash hooks. Each restore is reported as one line (what was
stopped and put back); the hooks end a cancelled or crashed run's log with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from syndgan.io import atomic_write_json

JOURNAL_DIR = ".syndgan/running"


def _journal_path(root: Path, stage: str) -> Path:
    return root / JOURNAL_DIR / (stage.replace("/", "_").replace(":", "_") + ".json")


class Guard:
    """The journal of one running stage; ``started(pid)`` records the DVC process. ``restored``: after an
    interruption, the one-line account of the restore (``restore``'s)."""

    def __init__(self, path: Path, journal: dict):
        self.path, self.journal = path, journal
        self.restored: str | None = None

    def started(self, pid: int) -> None:
        self.journal["pid"] = pid
        atomic_write_json(self.path, self.journal)


@contextlib.contextmanager
def guarded_stage(root: Path, stage: str, keep: Iterable[str], logger) -> Iterator[Guard]:
    """Back up what a run of ``stage`` may break; restore it on any exception, forget it on success.

    The restore is logged, except on Prefect's ``TerminationSignal``: the caller reports that one (a cancel
    says so in the task's final state, ``flows.stages.run_stage``) from ``guard.restored``."""
    from prefect.exceptions import TerminationSignal

    scratch = root / ".dvc" / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="syndgan-backup-", dir=scratch))
    pairs = []
    for i, out in enumerate([str(root / "dvc.lock"), *keep]):
        src = Path(out)
        if src.is_dir():
            shutil.copytree(src, folder / str(i), symlinks=True)
        elif src.exists():
            shutil.copy2(src, folder / str(i))
        else:
            continue
        pairs.append([str(src), str(folder / str(i))])
    path = _journal_path(root, stage)
    guard = Guard(path, {"stage": stage, "backup": str(folder), "pairs": pairs, "pid": None})
    atomic_write_json(path, guard.journal)
    try:
        yield guard
    except BaseException as e:
        guard.restored = restore(root, guard.journal, logger)
        path.unlink()
        if not isinstance(e, TerminationSignal):
            logger.info("%s", guard.restored)
        raise
    path.unlink()
    shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the stage command DVC started, and whatever that started)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(parents.get(p, []))
    return tree


def _stop(pid: int | None, logger, grace: float = 10.0) -> bool:
    """Stop the DVC process of an interrupted stage and its children if they still run (a SIGKILLed flow
    process leaves them orphaned, writing into the outputs about to be restored); whether any ran."""
    if pid is None or not _alive(pid):
        return False
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if " dvc repro " not in f" {cmdline} ".replace("-m dvc", "dvc"):
        return False  # the pid was reused by another program
    tree = _tree(pid)
    logger.debug("stopping the interrupted DVC process %d and its %d child process(es)", pid, len(tree) - 1)
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for p in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signum)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(p) for p in tree):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)  # reap DVC when it is this process's child
            time.sleep(0.1)
        if not any(_alive(p) for p in tree):
            return True
    return True


def _release_dvc_locks(root: Path, logger) -> None:
    """Drop the rwlock entries of dead DVC processes. An orphan killed here stays a zombie where nothing reaps
    it (a container whose PID 1 is not an init), and DVC, asking psutil, takes a zombie's lock as held."""
    path = root / ".dvc" / "tmp" / "rwlock"
    try:
        lock = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    read = {k: [i for i in v if _alive(i["pid"])] for k, v in lock.get("read", {}).items()}
    clean = {
        "read": {k: v for k, v in read.items() if v},
        "write": {k: i for k, i in lock.get("write", {}).items() if _alive(i["pid"])},
    }
    if clean != {"read": lock.get("read", {}), "write": lock.get("write", {})}:
        atomic_write_json(path, clean)
        logger.debug("released the DVC locks the stopped process held")


def _shown(path: str, root: Path) -> str:
    return os.path.relpath(path, root) if Path(path).is_relative_to(root) else path


def restore(root: Path, journal: dict, logger) -> str:
    """Stop the stage's DVC process, then put back dvc.lock, the cached outputs and the copies; returns what
    was done, as one line (the steps themselves are logged at debug level)."""
    from flows.stages import DVC, subprocess_env

    stage = journal["stage"]
    stopped = _stop(journal["pid"], logger)
    _release_dvc_locks(root, logger)
    lock = str(root / "dvc.lock")
    put_back = []
    for dst, copy in journal["pairs"]:
        if dst == lock:  # first: `dvc checkout` reads the lock
            shutil.copy2(copy, dst)
            put_back.append("dvc.lock")
    proc = subprocess.run(
        [*DVC, "checkout", "--force", stage], cwd=root, env=subprocess_env(), capture_output=True, text=True
    )
    if proc.returncode == 0:
        logger.debug("restored the previous outputs of %s from the DVC cache", stage)
        put_back.append("the cached outputs")
    else:  # a stage that never succeeded has nothing to restore
        logger.warning("dvc checkout %s: %s", stage, " ".join((proc.stderr or proc.stdout).split())[:300])
    for dst, copy in journal["pairs"]:
        if dst == lock:
            continue
        target = Path(dst)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        shutil.move(copy, target)
        logger.debug("restored %s", target)
        put_back.append(_shown(dst, root))
    shutil.rmtree(journal["backup"], ignore_errors=True)
    what = f"restored {stage}'s previous outputs ({', '.join(put_back)})" if put_back else "nothing to restore"
    return f"stopped {stage}'s DVC process, {what}" if stopped else what


def recover(root: Path, logger, cause: str | None = None) -> list[str]:
    """Restore every stage an earlier flow process left half-run, logging one line each (``cause``: how the
    run ended, when known); returns those lines."""
    done = []
    for path in sorted((root / JOURNAL_DIR).glob("*.json")):
        journal = json.loads(path.read_text(encoding="utf-8"))
        how = cause or f"stage {journal['stage']} was interrupted (cancel, crash or kill)"
        line = f"{how}; {restore(root, journal, logger)}"
        logger.warning("%s", line)
        path.unlink()
        done.append(line)
    return done


def _cancelled_stages(flow_run) -> list[str]:
    """The final messages of the flow run's stage tasks that ended Cancelled: each says what it restored."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterId,
        TaskRunFilter,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])),
            task_run_filter=TaskRunFilter(
                state=TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.CANCELLED]))
            ),
        )
    return [r.state.message for r in runs if r.state and r.state.message]


def recovery_hook(flow, flow_run, state) -> None:
    """Prefect ``on_cancellation`` / ``on_crashed`` hook: restore right away, not at the next run, and end the
    run's log with one line saying how it ended and what was restored (after Prefect's own lines)."""
    from prefect.logging.loggers import flow_run_logger

    from flows.stages import project_lock, project_root

    logger = flow_run_logger(flow_run, flow)
    cancel = state.is_cancelling() or state.is_cancelled()
    cause = "cancelled by the user" if cancel else f"the flow run crashed ({state.message or state.name})"
    root = project_root(flow_run.parameters.get("project_dir"))  # None: the flows' own default (cwd)
    with project_lock(root, logger):
        if recover(root, logger, cause):  # a process killed mid-stage: restored (and said) here
            return
    try:  # a stage interrupted in the flow's process restored itself and said so in its final state
        done = _cancelled_stages(flow_run)
    except Exception as e:  # the account is a courtesy: the restore itself is done
        logger.debug("could not read the flow run's task states: %s", e)
        done = []
    line = done[-1] if done else f"{cause}; no stage was left half-run: the outputs are the last good ones"
    (logger.info if cancel else logger.warning)("%s", line)
