"""Atomic artifact writes: a temp file in the destination folder, then ``os.replace``.

A killed process never leaves a half-written artifact under the final name; what it leaves instead (the
temporaries named below) ``remove_stale_temps`` clears at the start of the stage's next run.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; artifacts get normal permissions
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | Path, writer: Callable[[Path], Any]) -> Path:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_save_image(path: str | Path, image) -> Path:
    """Save a PIL image atomically; the format follows the final name's suffix."""
    fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}.get(Path(path).suffix.lower(), "PNG")
    return atomic_write(path, lambda p: image.save(p, format=fmt))


def atomic_torch_save(path: str | Path, obj: Any) -> Path:
    import torch

    return atomic_write(path, lambda p: torch.save(obj, p))


def _json_default(obj: Any):
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success it replaces ``path`` whole.

    On failure the previous ``path`` is left untouched and the temporary folder is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{os.getpid()}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def partial_path(path: str | Path) -> Path:
    """``.<name>.partial`` beside ``path``: where a file that grows over a long run (a training log) is written
    until it is complete and replaces ``path``, which meanwhile keeps its last complete version."""
    path = Path(path)
    return path.with_name(f".{path.name}.partial")


# The temporaries above: mkstemp/mkdtemp put 8 characters of [a-z0-9_] between prefix and suffix.
_TEMP_FILE = re.compile(r"\.(?P<name>.+)\.[a-z0-9_]{8}(?P<suffix>\.[^.]+)")  # atomic_path
_TEMP_DIR = re.compile(r"\.(?P<name>.+)\.(?:tmp-[a-z0-9_]{8}|old-[0-9]+)")  # atomic_dir
_PARTIAL = re.compile(r"\.(?P<name>.+)\.partial")  # partial_path


def temp_target(entry: Path) -> str | None:
    """The artifact name ``entry`` is an atomic writer's temporary of, else None."""
    if entry.is_dir() and not entry.is_symlink():
        m = _TEMP_DIR.fullmatch(entry.name)
        return m["name"] if m else None
    m = _TEMP_FILE.fullmatch(entry.name)
    if m and m["suffix"] == (Path(m["name"]).suffix or ".tmp"):
        return m["name"]
    m = _PARTIAL.fullmatch(entry.name)
    return m["name"] if m else None


def remove_stale_temps(outputs) -> list[Path]:
    """Delete what killed atomic writes of ``outputs`` left: each output's own temporaries beside it and, in an
    output folder, every writer temporary inside. Only the writers' name patterns match; nothing else is touched.

    Call it before a stage writes anything: a temporary of a write in progress would be removed too.
    """
    removed: list[Path] = []

    def drop(entry: Path) -> None:
        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
        removed.append(entry)

    for out in map(Path, outputs):
        if out.parent.is_dir():
            for entry in sorted(out.parent.iterdir()):
                if entry.name.startswith(f".{out.name}.") and temp_target(entry) == out.name:
                    drop(entry)
        if out.is_dir() and not out.is_symlink():
            for folder, dirs, files in os.walk(out):
                for name in sorted(dirs + files):
                    entry = Path(folder, name)
                    if temp_target(entry) is not None:
                        drop(entry)
                dirs[:] = [d for d in dirs if Path(folder, d).exists()]
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
