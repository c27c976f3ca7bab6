"""A stage that does not finish - failed, cancelled, crashed or killed - leaves the last good state.

DVC deletes a stage's outputs before running its command and writes ``dvc.lock`` only after it succeeded.
Before a stage runs, ``guarded_stage`` copies its ``cache: false`` outputs (metrics, plots) and ``dvc.lock``
into ``.dvc/tmp/`` and writes a journal, ``.syndgan/running/<stage>.json``, naming the copies and the DVC
process. Any exception in the flow process (a failed stage, or the ``TerminationSignal`` Prefect raises on
the SIGTERM of a cancel) stops DVC and restores at once. A process that dies without running Python
(SIGKILL, a lost worker) leaves the journal: ``recover`` restores from it at the start of the next flow on
the project and in the flows' cancellation and crash hooks.
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
    """The journal of one running stage; ``started(pid)`` records the DVC process."""

    def __init__(self, path: Path, journal: dict):
        self.path, self.journal = path, journal

    def started(self, pid: int) -> None:
        self.journal["pid"] = pid
        atomic_write_json(self.path, self.journal)


@contextlib.contextmanager
def guarded_stage(root: Path, stage: str, keep: Iterable[str], logger) -> Iterator[Guard]:
    """Back up what a run of ``stage`` may break; restore it on any exception, forget it on success."""
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
    except BaseException:
        restore(root, guard.journal, logger)
        path.unlink()
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


def _stop(pid: int | None, logger, grace: float = 10.0) -> None:
    """Stop the DVC process of an interrupted stage and its children if they still run (a SIGKILLed flow
    process leaves them orphaned, writing into the outputs about to be restored)."""
    if pid is None or not _alive(pid):
        return
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    if " dvc repro " not in f" {cmdline} ".replace("-m dvc", "dvc"):
        return  # the pid was reused by another program
    tree = _tree(pid)
    logger.info("stopping the interrupted DVC process %d and its %d child process(es)", pid, len(tree) - 1)
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
            return


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
        logger.info("released the DVC locks the stopped process held")


def restore(root: Path, journal: dict, logger) -> None:
    """Stop the stage's DVC process, then put back dvc.lock, the cached outputs and the copies."""
    from flows.stages import DVC, subprocess_env

    stage = journal["stage"]
    _stop(journal["pid"], logger)
    _release_dvc_locks(root, logger)
    lock = str(root / "dvc.lock")
    for dst, copy in journal["pairs"]:
        if dst == lock:  # first: `dvc checkout` reads the lock
            shutil.copy2(copy, dst)
    proc = subprocess.run(
        [*DVC, "checkout", "--force", stage], cwd=root, env=subprocess_env(), capture_output=True, text=True
    )
    if proc.returncode == 0:
        logger.info("restored the previous outputs of %s from the DVC cache", stage)
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
        logger.info("restored %s", target)
    shutil.rmtree(journal["backup"], ignore_errors=True)


def recover(root: Path, logger) -> list[str]:
    """Restore every stage an earlier flow process left half-run; the stages restored."""
    done = []
    for path in sorted((root / JOURNAL_DIR).glob("*.json")):
        journal = json.loads(path.read_text(encoding="utf-8"))
        logger.warning(
            "stage %s was interrupted (cancel, crash or kill): restoring its last good state", journal["stage"]
        )
        restore(root, journal, logger)
        path.unlink()
        done.append(journal["stage"])
    return done


def recovery_hook(flow, flow_run, state) -> None:
    """Prefect ``on_cancellation`` / ``on_crashed`` hook: restore right away, not at the next run."""
    from prefect.logging.loggers import flow_run_logger

    from flows.stages import project_lock, project_root

    logger = flow_run_logger(flow_run, flow)
    root = project_root(flow_run.parameters.get("project_dir"))  # None: the flows' own default (cwd)
    with project_lock(root, logger):
        recover(root, logger)
