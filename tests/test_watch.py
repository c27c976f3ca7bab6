"""pipeline.tools.watch: content-hash snapshots of the sources and what changed since the last successful run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from pipeline.config import parse_params
from pipeline.tools.watch import (
    FileState,
    diff,
    load_state,
    lock_changes,
    save_state,
    scan,
    sha256_file,
    watch_roots,
    within,
)

SUFFIXES = [".json", ".png"]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_scan_keeps_annotations_and_images_only(tmp_path):
    write(tmp_path / "src/a.json", b'{"shapes": []}')
    write(tmp_path / "src/sub/a.PNG", b"png")
    write(tmp_path / "src/notes.txt", b"ignored")
    write(tmp_path / "src/.hidden.json", b"{}")  # editor / atomic-write temp files
    write(tmp_path / "src/.cache/b.json", b"{}")
    snap = scan([tmp_path / "src"], SUFFIXES)
    assert sorted(Path(k).relative_to(tmp_path).as_posix() for k in snap) == ["src/a.json", "src/sub/a.PNG"]
    state = snap[str((tmp_path / "src/a.json").resolve())]
    assert state.sha256 == sha256_file(tmp_path / "src/a.json") and state.size == 14


def test_diff_reports_added_modified_removed_and_ignores_touch(tmp_path):
    a = write(tmp_path / "a.json", b"1")
    b = write(tmp_path / "b.png", b"2")
    before = scan([tmp_path], SUFFIXES)
    assert not diff(before, scan([tmp_path], SUFFIXES, before))

    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 5_000_000_000))  # same bytes, new mtime
    after_touch = scan([tmp_path], SUFFIXES, before)
    assert not diff(before, after_touch)

    write(b, b"22")
    c = write(tmp_path / "new/c.json", b"3")
    a.unlink()
    changes = diff(before, scan([tmp_path], SUFFIXES, before))
    assert changes.added == [str(c.resolve())]
    assert changes.modified == [str(b.resolve())]
    assert changes.removed == [str(a.resolve())]
    assert str(changes) == "1 added, 1 modified, 1 removed"
    assert changes.summary(limit=0) == {k: {"count": 1, "paths": []} for k in ("added", "modified", "removed")}


def test_hash_is_reused_only_when_size_and_mtime_match(tmp_path):
    a = write(tmp_path / "a.json", b"aaaa")
    before = scan([tmp_path], SUFFIXES)
    st = a.stat()
    write(a, b"bbbb")  # same size ...
    os.utime(a, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and mtime: the cheap path trusts the old hash
    assert not diff(before, scan([tmp_path], SUFFIXES, before))
    # without a previous snapshot the content is hashed again and the change shows
    assert diff(before, scan([tmp_path], SUFFIXES)).modified == [str(a.resolve())]


def test_state_round_trip_and_unreadable_state(tmp_path, caplog):
    snap = {"/data/a.json": FileState("ab" * 32, 3, 123)}
    path = save_state(tmp_path / ".syndgan/watch_state.json", snap, [Path("/data")])
    assert load_state(path) == snap
    assert json.loads(path.read_text())["roots"] == ["/data"]
    assert load_state(tmp_path / "missing.json") == {}
    path.write_text("{not json")
    assert load_state(path) == {}
    assert "unreadable watch state" in caplog.text
    path.write_text(json.dumps({"version": 99, "files": {}}))
    assert load_state(path) == {}


def test_watch_roots_follow_params(tmp_path):
    demo = parse_params({})
    assert watch_roots(demo, tmp_path) == [(tmp_path / "data/raw/demo").resolve()]
    sources = parse_params(
        {
            "ingest": {
                "sources": [
                    {"format": "labelme", "root": "data/raw/line3"},
                    {"format": "labelme", "root": "data/raw/line3/extra"},  # inside the first: scanned once
                    {"format": "mvtec", "root": "/abs/mvtec"},
                ]
            }
        }
    )
    assert watch_roots(sources, tmp_path) == sorted([(tmp_path / "data/raw/line3").resolve(), Path("/abs/mvtec")])
    explicit = parse_params(
        {"flows": {"watch": ["incoming"]}, "ingest": {"sources": [{"format": "mvtec", "root": "x"}]}}
    )
    assert watch_roots(explicit, tmp_path) == [(tmp_path / "incoming").resolve()]


def _sh(cmd: list[str], cwd: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_lock_changes_compare_sources_with_what_dvc_last_built(tmp_path):
    """Only source deps count: missing outputs (a fresh clone), params or code changes are not new data."""
    root = tmp_path / "proj"
    write(root / "src/a.json", b'{"label": "crack"}')
    write(root / "raw/other/b.json", b"{}")
    write(root / "params.yaml", b"ingest: {seed: 0}\n")
    write(root / "step.py", b"import shutil; shutil.copytree('src', 'data')\n")
    deps = "[src, raw/other, step.py]"
    write(
        root / "dvc.yaml",
        f"stages:\n  ingest:\n    cmd: python step.py\n    deps: {deps}\n".encode()
        + b"    params: [ingest.seed]\n    outs: [data]\n",
    )
    src, other = root / "src", root / "raw/other"
    _sh(["git", "init", "-q"], root)
    _sh([sys.executable, "-m", "dvc", "init", "-q"], root)
    assert lock_changes(root, ["ingest"], [src]) == {"src": "modified"}  # never built: everything is new
    _sh([sys.executable, "-m", "dvc", "repro", "-q"], root)
    assert lock_changes(root, ["ingest"], [src, other]) == {}

    for path in (root / "data").rglob("*"):  # a clone without the DVC cache has no outputs
        path.unlink()
    write(root / "params.yaml", b"ingest: {seed: 1}\n")
    write(root / "step.py", b"import shutil; shutil.copytree('src', 'data', dirs_exist_ok=True)\n")
    assert lock_changes(root, ["ingest"], [src, other]) == {}

    write(root / "raw/other/c.json", b"{}")
    assert lock_changes(root, ["ingest"], [src]) == {}  # not under the roots asked about
    assert lock_changes(root, ["ingest"], [other]) == {"raw/other": "modified"}
    assert lock_changes(root, ["ingest"], [root / "raw"]) == {"raw/other": "modified"}  # a root above it
    (root / "src/a.json").unlink()
    assert lock_changes(root, ["ingest"], [src / "a.json"]) == {"src": "modified"}  # a root inside it


def test_within_keeps_the_files_under_the_roots(tmp_path):
    snap = {str(tmp_path / "a/x.json"): FileState("1", 1, 1), str(tmp_path / "ab/y.json"): FileState("2", 1, 1)}
    assert list(within(snap, [tmp_path / "a"])) == [str(tmp_path / "a/x.json")]  # not "ab"
    assert within(snap, []) == {}
