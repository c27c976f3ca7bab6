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


def test_a_clone_that_pulls_a_finished_run_is_up_to_date(tmp_path):
    """A team's second clone: `dvc pull` from the first's remote, and nothing is out of date, neither then nor
    after Python has written its bytecode caches into the code folders the stages depend on (as `make test`
    does). Stage ``augment@none`` depends on whole code folders (syndgan/augment, syndgan/models...)."""
    first = tmp_path / "first"
    first.mkdir()
    for d in ("syndgan", "pipeline"):
        shutil.copytree(ROOT / d, first / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in (".dvcignore", ".gitignore"):
        shutil.copy(ROOT / f, first / f)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keep = {k: stages[k] for k in ("demo", "ingest", "rasterize")}
    keep["augment"] = {**stages["augment"], "foreach": {"none": stages["augment"]["foreach"]["none"]}}
    (first / "dvc.yaml").write_text(yaml.safe_dump({"stages": keep}, sort_keys=False))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = {k: params[k] for k in ("demo", "ingest", "rasterize", "pretrain", "augment")}
    params["demo"].update(parts=4, resolution=48, defect_fraction=0.5)
    params["rasterize"]["resolution"] = 32
    (first / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")}
    env.update(DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    dvc = [sys.executable, "-m", "dvc"]
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    _run([*git, "init", "-q"], first, env)
    _run([*dvc, "init", "-q"], first, env)
    _run([*dvc, "remote", "add", "-q", "-d", "team", str(tmp_path / "remote")], first, env)
    _run([*dvc, "repro"], first, {**env, "PYTHONPATH": str(first)})  # the stages write bytecode into first/
    assert list((first / "syndgan" / "augment").glob("__pycache__/*.pyc")), "the run should have written bytecode"
    _run([*dvc, "push", "-q"], first, env)
    _run([*git, "add", "-A"], first, env)
    _run([*git, "commit", "-q", "-m", "a finished run"], first, env)

    second = tmp_path / "second"
    _run([*git, "clone", "-q", str(first), str(second)], tmp_path, env)
    assert not list(second.rglob("*.pyc"))
    _run([*dvc, "pull", "-q"], second, env)
    status = _run([*dvc, "status"], second, env)
    assert "up to date" in status, status
    # what `make test` does to a clone: imports write __pycache__ next to the code
    _run([sys.executable, "-c", "import syndgan.augment, syndgan.models, syndgan.quality, pipeline.augment"], second,
         {**env, "PYTHONPATH": str(second)})  # fmt: skip
    assert list((second / "syndgan" / "models").glob("__pycache__/*.pyc"))
    status = _run([*dvc, "status"], second, env)
    assert "up to date" in status, status


def test_a_studio_save_leaves_the_pipeline_up_to_date(scratch_project):
    """The studio's default output folder is no stage's input: saving there changes nothing DVC watches."""
    from pipeline.tools.cli import STUDIO_OUT

    proj, env = scratch_project
    dvc = [sys.executable, "-m", "dvc"]
    _run([*dvc, "repro"], proj, env)
    saved = proj / STUDIO_OUT
    saved.mkdir(parents=True)
    shutil.copy(proj / "data/raw/demo/part0000_bright.png", saved / "studio_0001.png")
    (saved / "studio_0001.json").write_text(json.dumps({"shapes": [], "imagePath": "studio_0001.png"}))
    status = _run([*dvc, "status"], proj, env)
    assert "up to date" in status, status
