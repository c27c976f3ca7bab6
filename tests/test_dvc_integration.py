"""ingest + rasterize through a real `dvc repro`, on a small generated dataset in a scratch project."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd, cwd, env):
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert p.returncode == 0, f"{cmd} failed:\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr


@pytest.fixture
def scratch_project(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    for d in ("syndgan", "pipeline"):
        shutil.copytree(ROOT / d, proj / d, ignore=shutil.ignore_patterns("__pycache__"))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keep = {k: stages[k] for k in ("demo", "ingest", "rasterize")}
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": keep}, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {k: params[k] for k in ("demo", "ingest", "rasterize")}
    params["demo"].update(parts=8, resolution=64, defect_fraction=0.5)
    params["rasterize"]["resolution"] = 32
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {
        **os.environ,
        "DVC_NO_ANALYTICS": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    env["PYTHONPATH"] = str(proj)
    _run(["git", "init", "-q"], proj, env)
    _run([sys.executable, "-m", "dvc", "init", "-q"], proj, env)
    return proj, env


def test_dvc_repro_ingest_rasterize(scratch_project):
    proj, env = scratch_project
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "repro", "rasterize"], proj, env)
    manifest = pd.read_parquet(proj / "data/interim/manifest.parquet")
    assert len(manifest) == 32 and set(manifest["split"]) <= {"train", "val", "test"}
    # all four illuminations of a part share the split
    assert manifest.groupby("group")["split"].nunique().max() == 1
    index = pd.read_parquet(proj / "data/processed/index.parquet")
    assert len(index) == 32
    info = json.loads((proj / "data/processed/dataset.json").read_text())
    assert info["resolution"] == 32 and [c["name"] for c in info["classes"]] == ["bump", "chipping", "dust"]
    assert "rasterize" in yaml.safe_load((proj / "dvc.lock").read_text())["stages"]
    # nothing changed: a second repro runs nothing
    out = _run([*dvc, "repro", "rasterize"], proj, env)
    assert "didn't change" in out or "up to date" in out
    # a params edit that matters reruns rasterize only
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["rasterize"]["resolution"] = 16
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _run([*dvc, "repro", "rasterize"], proj, env)
    assert "Running stage 'rasterize'" in out and "Running stage 'ingest'" not in out
    assert json.loads((proj / "data/processed/dataset.json").read_text())["resolution"] == 16


def test_bad_annotation_fails_one_line_and_keeps_artifacts(scratch_project):
    proj, env = scratch_project
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "repro", "ingest"], proj, env)
    before = (proj / "data/interim/manifest.parquet").read_bytes()
    # a user source with a malformed LabelMe file
    src = proj / "data/raw/line3"
    src.mkdir(parents=True)
    shutil.copy(proj / "data/raw/demo/part0000_bright.png", src / "a.png")
    (src / "a.json").write_text('{"shapes": [}')
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["ingest"]["sources"] = [{"format": "labelme", "root": "data/raw/line3"}]
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    p = subprocess.run([sys.executable, "-m", "pipeline.ingest"], cwd=proj, env=env, capture_output=True, text=True)
    assert p.returncode == 1
    err = [line for line in p.stderr.splitlines() if "error" in line]
    assert len(err) == 1 and "a.json" in err[0], p.stderr
    assert "Traceback" not in p.stderr
    assert (proj / "data/interim/manifest.parquet").read_bytes() == before
