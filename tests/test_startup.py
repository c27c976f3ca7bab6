"""Stages that need no torch do not import it (~1 GB and seconds before anything happens)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("stage", ["demo", "ingest", "rasterize", "report"])
def test_torch_free_stages_do_not_import_torch(stage):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", f"pipeline.{stage}", "--help"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    imported = [line.rsplit("|", 1)[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert "pipeline.config" in imported  # the check sees the stage's imports
    assert not [m for m in imported if m == "torch" or m.startswith("torch.")]


def test_augment_method_modules_load_only_for_the_names_that_read_the_registry():
    """``compute_targets`` (what the pipeline uses for counts) imports no method module; ``create_method`` all."""
    code = (
        "import sys, syndgan.augment as a\n"
        "a.compute_targets, a.PlacementSettings\n"
        "print(sorted(m for m in sys.modules if m.startswith('syndgan.augment.')))\n"
        "a.create_method('copy_paste')\n"
        "print(all(f'syndgan.augment.{m}' in sys.modules for m in ('copy_paste', 'generation', 'hybrid', 'syndgan')))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["['syndgan.augment.settings', 'syndgan.augment.targets']", "True"]
