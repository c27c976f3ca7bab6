"""pipeline.watch: content-hash snapshots of the sources and what changed since the last successful run."""

import json
import os
from pathlib import Path

from pipeline.config import parse_params
from pipeline.watch import FileState, diff, load_state, save_state, scan, sha256_file, watch_roots

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
