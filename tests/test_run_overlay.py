"""`python -m pipeline.tools.run` with a params overlay: only what differs from params.yaml."""

from __future__ import annotations

import json

import yaml

from pipeline.ingest import main as ingest_main
from pipeline.tools.run import main


def test_overlay_with_only_ingest_and_rasterize_runs_those_stages(tmp_path, capsys, ingest_labelme_dataset):
    overlay = tmp_path / "real.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {
                "ingest": {
                    "sources": [{"format": "labelme", "root": str(ingest_labelme_dataset)}],
                    "classes": {"scratch": [255, 0, 0]},
                },
                "rasterize": {"resolution": 16},
            }
        )
    )
    work = tmp_path / "run"
    assert main(["--params", str(overlay), "--workdir", str(work), "--only", "ingest", "rasterize"]) == 0
    report = json.loads((work / "data/interim/ingest_report.json").read_text())
    assert report["counts"]["images"] == 6 and report["classes"] == ["scratch"]
    assert (work / "data/processed").is_dir() and any((work / "data/processed").rglob("*.png"))
    merged = yaml.safe_load((work / "params.yaml").read_text())  # what the stages read: the whole merged file
    assert merged["ingest"]["classes"] == {"scratch": [255, 0, 0]} and merged["ingest"]["split"]["train"] == 0.6
    assert "train_synth" in merged
    # the work folder is a DVC project of its own: DVC ran (and recorded) just the two stages
    assert (work / ".dvc").is_dir() and set(yaml.safe_load((work / "dvc.lock").read_text())["stages"]) == {
        "ingest",
        "rasterize",
    }
    stamp = (work / "data/processed/dataset.json").stat().st_mtime_ns
    assert main(["--params", str(overlay), "--workdir", str(work), "--only", "ingest", "rasterize"]) == 0
    assert (work / "data/processed/dataset.json").stat().st_mtime_ns == stamp  # cached by DVC: not rerun


def test_unknown_overlay_key_is_one_line_before_any_stage(tmp_path, capsys):
    overlay = tmp_path / "real.yaml"
    overlay.write_text("rasterize:\n  resolutoin: 64\n")
    assert main(["--params", str(overlay), "--workdir", str(tmp_path / "run"), "--only", "rasterize"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"run: error: {overlay}: rasterize.resolutoin: unknown key") and "\n" not in err
    assert "==>" not in captured.out and not (tmp_path / "run").exists()


def test_a_stage_reads_another_params_file_as_an_overlay(tmp_path, monkeypatch, ingest_labelme_dataset):
    monkeypatch.chdir(tmp_path)
    project = {"ingest": {"sources": [{"format": "labelme", "root": "lm"}], "classes": {"scratch": [255, 0, 0]}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(project))
    (tmp_path / "short.yaml").write_text("ingest:\n  out: elsewhere\n")  # just what differs
    assert ingest_main(["--params", "short.yaml"]) == 0
    report = json.loads((tmp_path / "elsewhere" / "ingest_report.json").read_text())
    assert report["classes"] == ["scratch"] and report["counts"]["images"] == 6


def test_work_folder_pipeline_caches_every_output_and_persists_none():
    """A work folder has no git: every output goes to DVC's cache, so DVC keeps a run cache for every stage (it
    keeps none for a stage with a persistent or an uncached output outside metrics and plots)."""
    from pipeline.tools.run import cache_every_out, project_pipeline

    for name, stage in project_pipeline()["stages"].items():
        for out in stage.get("do", stage).get("outs", []):
            opts = next(iter(out.values())) if isinstance(out, dict) else {}
            assert "cache" not in opts and "persist" not in opts, (name, out)
    stage = {
        "outs": ["a", {"b": {"cache": False}}, {"c": {"cache": False, "desc": "x"}}],
        "plots": [{"p": {"cache": False}}],
    }
    assert cache_every_out(stage) == {"outs": ["a", "b", {"c": {"desc": "x"}}], "plots": [{"p": {"cache": False}}]}
