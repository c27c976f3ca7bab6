"""Headline metrics: small flat files, a row per method, that `dvc metrics show` prints within 200 columns."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from syndgan.classify import aggregate_runs, classification_metrics
from syndgan.headline import headline_rows

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["none", "cutmix", "copy_paste", "syndgan"]


def _aggregate() -> dict:
    """classify_aggregate's output for 4 methods x 3 seeds x 2 doses; the dose 100 wins on val for syndgan."""
    names = ["normal", "bump", "dust"]
    runs = []
    for i, method in enumerate(METHODS):
        for seed in range(3):
            for dose, val in (("0", 0.5), ("100", 0.6 if method == "syndgan" else 0.4)):
                y = [0, 0, 0, 1, 1, 2, 2, 2]
                p = [0, 0, 1, 1, 2, 2, 2, 0] if (seed + i) % 2 else [0, 0, 0, 1, 1, 2, 2, 0]
                m = classification_metrics(y, p, names)
                m["val_macro_f1"] = val
                m["total_accuracy"] += 0.001 * (seed + i) + (0.1 if dose == "100" else 0.0)
                runs.append({"method": method, "seed": seed, "dose": dose, **m})
    return aggregate_runs(runs)


def _evaluate() -> dict:
    pooled = {"fid_effnet": 65.358337270, "kid_effnet_x1e3_mean": 19.2241877, "kid_effnet_x1e3_std": 4.8}
    recon = {"recon_l1_defect": 0.0333523216, "recon_perceptual_effnet_defect": 0.2936573331, "steps": 200}
    return {
        "metric_names": {"fid": "fid_effnet", "kid": "kid_effnet"},
        "synthesis": {
            name: {"all": {k: v + j for k, v in pooled.items()}, "bump": {"fid_effnet": 1.0}}
            for j, name in enumerate(["real_train", "copy_paste", "syndgan", "syndgan_no_pretrain"])
        },
        "reconstruction": {
            "perceptual": "perceptual_effnet",
            "models": {"syndgan": recon, "no_pretrain": {k: 2 * v for k, v in recon.items()}},
        },
    }


def test_headline_rows_from_small_inputs():
    agg = _aggregate()
    rows = headline_rows(agg, _evaluate(), {"fid_effnet": 191.14874267578125, "fid_effnet_start": 358.4})
    assert sorted(rows) == sorted([*METHODS, "real_train", "syndgan_no_pretrain"])
    s = agg["syndgan"]["100"]
    assert s["selected"] and not agg["syndgan"]["0"]["selected"]
    syn = rows["syndgan"]
    assert syn["dose"] == "100" and syn["seeds"] == 3  # the dose chosen on val, not the best on test
    assert syn["total"] == round(100 * s["total_accuracy"]["mean"], 2)
    assert syn["total_sd"] == round(100 * s["total_accuracy"]["std"], 2)
    assert syn["f1"] == round(100 * s["macro_f1"]["mean"], 2) and syn["f1_sd"] == round(100 * s["macro_f1"]["std"], 2)
    assert syn["defect_recall"] == round(100 * s["defect_recall"]["mean"], 2)
    assert syn["normal_recall"] == round(100 * s["per_class_accuracy"]["normal"]["mean"], 2)
    assert (syn["fid"], syn["kid_x1e3"], syn["gan_fid"]) == (67.36, 21.22, 191.15)  # pooled ("all") values
    assert (syn["recon_l1"], syn["recon_perc"]) == (0.0334, 0.2937)
    assert rows["syndgan_no_pretrain"] == {"fid": 68.36, "kid_x1e3": 22.22, "recon_l1": 0.0667, "recon_perc": 0.5873}
    assert rows["real_train"] == {"fid": 65.36, "kid_x1e3": 19.22}
    assert rows["none"]["dose"] == "0" and "fid" not in rows["none"]  # not evaluated: left out, not zero
    assert all(not isinstance(v, (dict, list)) for row in rows.values() for v in row.values())  # flat
    assert headline_rows(None, None, None) == {}
    assert set(headline_rows(agg, None, None)) == set(METHODS)


def test_dvc_metrics_show_on_the_project_yaml_fits_200_columns(tmp_path, monkeypatch):
    """The project's own dvc.yaml and params.yaml: only the headline files are DVC metrics, and the detailed
    files (here with long nested keys) stay out of `dvc metrics show`."""
    from pipeline import headline

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], check=True)
    detailed = {
        "metrics/classify.json": _aggregate(),
        "metrics/evaluate.json": _evaluate(),
        "metrics/pretrain.json": {"fid_effnet": 191.14874267578125, "fid_effnet_start": 358.4332275390625},
        "metrics/train_synth.json": {f"recon_perceptual_effnet_defect_nomap_{i}": 0.1 * i for i in range(30)},
        "data/interim/ingest_report.json": {"per_source": {f"source_{i}": {"images": i} for i in range(30)}},
    }
    for path, doc in detailed.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(doc))
    assert headline.main([]) == 0
    files = sorted(p.name for p in Path("metrics/headline").iterdir())
    assert files == sorted(f"{n}.json" for n in [*METHODS, "real_train", "syndgan_no_pretrain"])

    proc = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 + len(files)  # a header and one row per method: no detailed file is listed
    assert all(line.startswith("metrics/headline/") for line in lines[1:])
    assert max(len(line) for line in lines) <= 200, proc.stdout
    for column in ("dose", "total", "total_sd", "f1", "defect_recall", "normal_recall", "fid", "kid_x1e3"):
        assert f" {column} " in f" {lines[0]} "
