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
