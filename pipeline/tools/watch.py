"""What changed under the data sources since the last successful retrain: content hashes, no orchestration.

Sources a DVC stage depends on are compared with what ``dvc.lock`` recorded when they were last built
(``lock_changes``): a fresh clone, with no watch state, already knows whether they changed. Sources outside
DVC's view are compared with the watch state, the snapshot of the last successful run.

A snapshot maps each watched file (absolute path) to its sha256, size and mtime. Rescans reuse the previous
hash when size and mtime are unchanged, so a large source costs one ``stat`` per file; a file whose mtime
moved but whose content did not (``touch``, a re-copy) is not a change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from syndgan.io import atomic_write_json

log = logging.getLogger(__name__)

STATE_VERSION = 1


@dataclass(frozen=True)
class FileState:
    sha256: str
    size: int
    mtime_ns: int


Snapshot = dict[str, FileState]


@dataclass
class Changes:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed)

    @property
    def paths(self) -> list[str]:
        return sorted(self.added + self.modified + self.removed)

    def summary(self, limit: int = 20) -> dict:
        """Counts and the first ``limit`` paths of each kind (event payloads and logs stay small)."""
        return {
            kind: {"count": len(paths), "paths": paths[:limit]}
            for kind, paths in (("added", self.added), ("modified", self.modified), ("removed", self.removed))
        }

    def __str__(self) -> str:
        return f"{len(self.added)} added, {len(self.modified)} modified, {len(self.removed)} removed"


def watch_roots(params, project_dir: str | Path) -> list[Path]:
    """Folders to watch: ``flows.watch``, else the roots of ``ingest.sources``, else the demo dataset."""
    project_dir = Path(project_dir).resolve()
    if params.flows.watch:
        roots = params.flows.watch
    elif params.ingest.sources:
        roots = [s.root for s in params.ingest.sources]
    else:
        roots = [params.demo.out]
    resolved = sorted({(project_dir / Path(r).expanduser()).resolve() for r in roots})
    # a root inside another root would be scanned twice
    return [r for r in resolved if not any(other in r.parents for other in resolved)]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def iter_files(roots: Iterable[Path], suffixes: Iterable[str]) -> Iterable[Path]:
    """Files under ``roots`` with one of ``suffixes`` (case-insensitive); hidden files and folders skipped."""
    suffixes = {s.lower() for s in suffixes}
    for root in roots:
        root = Path(root)
        if root.is_file():
            if root.suffix.lower() in suffixes:
                yield root
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith(".") and Path(name).suffix.lower() in suffixes:
                    yield Path(dirpath) / name


def scan(roots: Iterable[Path], suffixes: Iterable[str], previous: Snapshot | None = None) -> Snapshot:
    """Snapshot of the watched files; hashes from ``previous`` are reused when size and mtime match."""
    previous = previous or {}
    snapshot: Snapshot = {}
    for path in iter_files(roots, suffixes):
        key = str(path.resolve())
        try:
            st = path.stat()
            old = previous.get(key)
            if old is not None and old.size == st.st_size and old.mtime_ns == st.st_mtime_ns:
                snapshot[key] = old
            else:
                snapshot[key] = FileState(sha256_file(path), st.st_size, st.st_mtime_ns)
        except FileNotFoundError:  # removed while scanning: it simply is not there
            continue
    return snapshot


def diff(previous: Snapshot, current: Snapshot) -> Changes:
    return Changes(
        added=sorted(set(current) - set(previous)),
        modified=sorted(k for k in current.keys() & previous.keys() if current[k].sha256 != previous[k].sha256),
        removed=sorted(set(previous) - set(current)),
    )


def lock_changes(project_dir: str | Path, stages: Iterable[str], roots: Iterable[Path]) -> dict[str, str]:
    """Dependencies of ``stages`` that differ from ``dvc.lock`` and overlap ``roots``: {path: how}.

    ``how`` is DVC's word ("modified", "deleted", "new"); a stage never built reports its deps as changed.
    Params, code and missing outputs are not source changes and are left out.
    """
    from dvc.repo import Repo

    project_dir = Path(project_dir).resolve()
    roots = [Path(r).resolve() for r in roots]
    # DVC resolves targets against the working directory, not the repo: name the dvc.yaml explicitly
    targets = [
        f"{project_dir / s.split(':')[0]}:{s.split(':')[1]}" if ":" in s else f"{project_dir / 'dvc.yaml'}:{s}"
        for s in stages
    ]
    with Repo(str(project_dir)) as repo:
        status = repo.status(targets=targets)
    changed: dict[str, str] = {}
    for entries in status.values():
        for entry in entries:
            # entries are {"changed deps": {...}}, {"changed outs": {...}} or words like "always changed"
            if not isinstance(entry, dict) or "changed deps" not in entry:
                continue
            for dep, how in entry["changed deps"].items():
                path = (project_dir / dep).resolve()
                if isinstance(how, str) and any(path == r or r in path.parents or path in r.parents for r in roots):
                    changed[dep] = how
    return changed


def within(snapshot: Snapshot, roots: Iterable[Path]) -> Snapshot:
    """The part of ``snapshot`` under ``roots``."""
    roots = [Path(r) for r in roots]
    return {k: v for k, v in snapshot.items() if any(Path(k) == r or r in Path(k).parents for r in roots)}


def load_state(path: str | Path) -> Snapshot:
    """The snapshot of the last successful run; empty when there is none (everything counts as new).

    An unreadable state file is treated like a missing one, with a warning: it is only a cache of what was
    already processed, and re-checking everything is safe because DVC skips stages whose inputs are unchanged.
    """
    path = Path(path)
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("version") != STATE_VERSION:
            raise ValueError(f"version {raw.get('version')!r}, expected {STATE_VERSION}")
        return {k: FileState(str(v["sha256"]), int(v["size"]), int(v["mtime_ns"])) for k, v in raw["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("%s: unreadable watch state (%s); treating every watched file as new", path, e)
        return {}


def save_state(path: str | Path, snapshot: Snapshot, roots: Iterable[Path] = ()) -> Path:
    return atomic_write_json(
        path,
        {
            "version": STATE_VERSION,
            "roots": [str(r) for r in roots],
            "files": {k: asdict(v) for k, v in sorted(snapshot.items())},
        },
    )
