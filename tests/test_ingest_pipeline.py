"""Stage `ingest`: params -> artifacts on disk, atomically; one-line errors; params validation."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from pipeline.config import parse_params
from pipeline.ingest import main
from syndgan.data.ingest import ANNOTATION_COLUMNS, MANIFEST_COLUMNS
from syndgan.errors import ConfigError

CLASSES = {"scratch": [255, 0, 0], "dent": [0, 255, 0]}


def _params(tmp_path, sources, **ingest_extra):
    doc = {
        "demo": {"out": "demo_data", "parts": 4, "resolution": 64, "defect_fraction": 0.5},
        "ingest": {"sources": sources, "classes": CLASSES, "out": "interim", **ingest_extra},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def test_stage_writes_artifacts_and_round_trips_dtypes(tmp_path, monkeypatch, ingest_labelme_dataset, ingest_labelme):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 24, 3), 90, np.uint8), "RGB").save(buf, format="PNG")
    ingest_labelme(
        ingest_labelme_dataset / "embedded.json", image_path="", imageData=base64.b64encode(buf.getvalue()).decode()
    )
    params = _params(tmp_path, [{"format": "labelme", "root": "lm", "group_pattern": r"^(part\d+)_"}])
    assert main(["--params", params]) == 0

    out = tmp_path / "interim"
    m = pd.read_parquet(out / "manifest.parquet")
    a = pd.read_parquet(out / "annotations.parquet")
    assert list(m.columns) == list(MANIFEST_COLUMNS) and list(a.columns) == list(ANNOTATION_COLUMNS)
    for df, cols in ((m, MANIFEST_COLUMNS), (a, ANNOTATION_COLUMNS)):
        for name, dtype in cols.items():
            assert pd.api.types.is_string_dtype(df[name]) if dtype == "str" else df[name].dtype == dtype, name
    assert len(m) == 7 and m["id"].is_unique
    assert set(m.loc[m["label"] == "scratch", "group"]) == {"lm/part1"}
    assert len(a) == 2 and set(a["image_id"]) == {"lm/part1_a", "lm/part1_b"}
    embedded = m.set_index("id").loc["lm/embedded"]
    # paths are relative to the working directory, so the cached manifest is the same in every clone
    assert embedded["path"] == "interim/extracted/images/lm__embedded.png"
    assert not any(Path(p).is_absolute() for p in m["path"]) and all(Path(p).is_file() for p in m["path"])
    assert (out / "extracted" / "images" / "lm__embedded.png").read_bytes() == buf.getvalue()
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["counts"]["images"] == 7 and report["counts"]["by_label"]["scratch"] == 2
    assert report["skipped"] == []


def test_failed_run_keeps_previous_artifacts(tmp_path, monkeypatch, capsys, ingest_labelme_dataset, ingest_labelme):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, [{"format": "labelme", "root": "lm"}])
    assert main(["--params", params]) == 0
    out = tmp_path / "interim"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(before) == {"manifest.parquet", "annotations.parquet", "ingest_report.json"}

    (ingest_labelme_dataset / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    ingest_labelme(ingest_labelme_dataset / "broken.json")
    capsys.readouterr()
    assert main(["--params", params]) == 1
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]  # logs may come before it; the error is one line, no traceback
    assert "Traceback" not in err
    assert last.startswith("ingest: error: ") and "broken.png: not an image" in last
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left behind

    # on_error: skip -> the run succeeds and the report names the file
    assert main(["--params", _params(tmp_path, [{"format": "labelme", "root": "lm"}], on_error="skip")]) == 0
    report = json.loads((out / "ingest_report.json").read_text())
    assert [s["path"].rsplit("/", 1)[1] for s in report["skipped"]] == ["broken.png"]


def test_config_errors_exit_1_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, [{"format": "labelme", "root": "lm", "label_map": {"Scratch": "scrach"}}])
    assert main(["--params", params]) == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and "ingest.sources[0].label_map.Scratch" in err.splitlines()[-1]


def test_demo_dataset_is_the_default(tmp_path, monkeypatch):
    from syndgan.data.demo import DemoSettings, generate_demo

    monkeypatch.chdir(tmp_path)
    generate_demo(tmp_path / "demo_data", DemoSettings(seed=0, parts=4, resolution=64, defect_fraction=0.5))
    doc = {
        "demo": {"out": "demo_data"},
        "ingest": {"classes": {"bump": [255, 0, 0], "chipping": [0, 255, 0], "dust": [0, 0, 255]}, "out": "interim"},
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc))
    assert main(["--params", str(tmp_path / "params.yaml")]) == 0
    m = pd.read_parquet(tmp_path / "interim" / "manifest.parquet")
    assert len(m) == 16 and set(m["source"]) == {"demo"}
    assert sorted(m["group"].unique()) == [f"demo/part{k:04d}" for k in range(4)]
    assert (m.groupby("group")["split"].nunique() == 1).all()
    assert (m["label"] != "normal").sum() == 8  # 2 of 4 parts carry a defect, seen under 4 lights


@pytest.mark.parametrize(
    "source, key",
    [
        ({"format": "labelme", "root": "x", "group_pattern": "(part"}, "ingest.sources[0].group_pattern"),
        ({"format": "labelme", "root": "x", "label_map": {"a": "nope"}}, "ingest.sources[0].label_map.a"),
        ({"format": "coco", "root": "x"}, "ingest.sources[0].annotations"),
        ({"format": "yolo", "root": "x"}, "ingest.sources[0].format"),
    ],
)
def test_params_validation(source, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        parse_params({"ingest": {"sources": [source], "classes": CLASSES}})


def test_params_reject_duplicate_source_names_and_negative_seed():
    two = [{"format": "labelme", "root": "a/x"}, {"format": "mvtec", "root": "b/x"}]
    with pytest.raises(ConfigError, match=r"ingest.sources\[1\].name: 'x' is also"):
        parse_params({"ingest": {"sources": two}})
    with pytest.raises(ConfigError, match="ingest.seed"):
        parse_params({"ingest": {"seed": -1}})
