"""Temporaries a kill -9 leaves behind atomic writers are removed at the stage's next run, and nothing else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.ingest import main as ingest_main
from syndgan.io import remove_stale_temps

ROOT = Path(__file__).resolve().parent.parent

_KILLED_WRITER = """
import sys, time
from syndgan.io import atomic_dir, atomic_path
with atomic_path(sys.argv[1]) as tmp, atomic_dir(sys.argv[2]) as tmp_dir:
    (tmp_dir / "half.png").write_bytes(b"x")
    print("writing", flush=True)
    time.sleep(60)
"""


def _kill_during_write(file: Path, folder: Path) -> set[Path]:
    """Run atomic_path(file) + atomic_dir(folder) in a process killed with SIGKILL mid-write; its debris."""
    for d in (file.parent, folder.parent):
        d.mkdir(parents=True, exist_ok=True)
    before = {p for d in {file.parent, folder.parent} for p in d.iterdir()}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(file), str(folder)], stdout=subprocess.PIPE, env=env
    )
    assert proc.stdout.readline() == b"writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    debris = {p for d in {file.parent, folder.parent} for p in d.iterdir()} - before
    assert len(debris) == 2 and all(p.name.startswith(".") for p in debris)
    return debris


def _unrelated(folder: Path) -> dict[Path, bytes]:
    files = {
        folder / "notes.txt": b"mine",
        folder / ".gitignore": b"*",
        folder / ".last.pt.txt": b"a user's file, not a temporary",
        folder / ".last.pt.12345678.txt": b"suffix differs from the writer's",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def test_debris_of_a_killed_checkpoint_write_is_removed_and_nothing_else(tmp_path):
    out = tmp_path / "models" / "pretrain"
    debris = _kill_during_write(out / "checkpoints" / "last.pt", out / "samples")
    assert any(p.name.startswith(".last.pt.") and p.stat().st_size == 0 for p in debris)
    keep = _unrelated(out / "checkpoints")
    (out / "checkpoints" / "last.pt").write_bytes(b"the previous checkpoint")
    elsewhere = _kill_during_write(tmp_path / "models" / "train_synth" / "last.pt", tmp_path / "plots" / "x")

    removed = remove_stale_temps([out])
    assert set(removed) == debris
    assert not any(p.exists() for p in debris)
    assert all(p.read_bytes() == data for p, data in keep.items())
    assert (out / "checkpoints" / "last.pt").read_bytes() == b"the previous checkpoint"
    assert all(p.exists() for p in elsewhere)  # another stage's folders are not this run's


def test_file_output_removes_only_its_own_temporaries_beside_it(tmp_path):
    metrics = tmp_path / "metrics"
    mine = _kill_during_write(metrics / "pretrain.json", metrics / "pretrain_plots")
    theirs = _kill_during_write(metrics / "train_synth.json", metrics / "train_synth_plots")
    removed = remove_stale_temps([metrics / "pretrain.json", metrics / "pretrain_plots"])
    assert set(removed) == mine and all(p.exists() for p in theirs)


def test_ingest_stage_start_removes_its_stale_temporaries(tmp_path, monkeypatch, ingest_labelme_dataset):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "ingest: {sources: [{format: labelme, root: lm}], classes: {scratch: [255, 0, 0]}, out: interim}\n"
    )
    debris = _kill_during_write(tmp_path / "interim" / "manifest.parquet", tmp_path / "interim" / "extracted")
    keep = _unrelated(tmp_path / "interim")
    (tmp_path / "interim" / ".notes.txt.abcdefgh.txt").write_bytes(b"not an ingest output's temporary")
    processed = _kill_during_write(tmp_path / "processed" / "meta.json", tmp_path / "processed" / "images")
    assert ingest_main([]) == 0
    assert not any(p.exists() for p in debris)
    assert all(p.read_bytes() == data for p, data in keep.items())
    assert (tmp_path / "interim" / ".notes.txt.abcdefgh.txt").exists()
    assert all(p.exists() for p in processed)  # rasterize's debris waits for rasterize
    assert sorted(p.name for p in (tmp_path / "interim").iterdir() if not p.name.startswith(".")) == [
        "annotations.parquet", "extracted", "ingest_report.json", "manifest.parquet", "notes.txt"
    ]  # fmt: skip


@pytest.mark.parametrize(
    "output, name",
    [
        ("manifest.parquet", ".manifest.parquet.abcd_123.parquet"),
        ("manifest", ".manifest.abcd_123.tmp"),
        ("extracted", ".extracted.tmp-0a1b2c3d"),
        ("extracted", ".extracted.old-4242"),
        ("losses.csv", ".losses.csv.partial"),  # a training log in progress (CsvLog)
    ],
)
def test_each_writer_pattern_matches(tmp_path, output, name):
    entry = tmp_path / name
    entry.mkdir() if "tmp-" in name or "old-" in name else entry.write_bytes(b"")
    assert remove_stale_temps([tmp_path / output]) == [entry] and not entry.exists()
