"""The scarcity benchmark end to end through DVC: demo data at 32 px, two k values, one seed."""

import json

import pytest
import yaml

from pipeline.experiments import scarcity
from pipeline.provenance import git_version

TINY = {
    "demo": {"parts": 16, "resolution": 64, "defect_fraction": 0.6},
    "rasterize": {"resolution": 32},
    "pretrain": {
        "resolution": 32, "steps": 2, "batch_size": 4, "z_dim": 16, "w_dim": 16, "g_channel_base": 128,
        "g_channel_max": 32, "d_channel_base": 128, "d_channel_max": 16, "d_proj_channels": 4,
        "fid_samples": 0, "fid_every": 0, "sample_every": 1, "checkpoint_every": 1, "device": "cpu",
    },
    "train_synth": {
        "n_blocks": 2, "enc_channel_base": 128, "enc_channel_max": 16, "sft_hidden": 4, "batch_size": 4,
        "steps": 2, "checkpoint_every": 1, "sample_every": 1, "perceptual": "effnet", "device": "cpu",
        "ablations": [],
    },
    "augment": {"targets": {"mode": "count", "count": 2}},
    "classify": {
        "methods": ["none", "copy_paste", "syndgan"],
        "seeds": [0],
        "doses": [1, "all"],
        "train": {"resolution": 32, "batch_size": 4, "epochs": 1, "eval_from_epoch": 0},
    },
    "scarcity": {"dataset": "tiny", "ks": [1]},
}  # fmt: skip


@pytest.mark.slow
def test_benchmark_grid_through_dvc_resumes_finished_cells(tmp_path, capsys):
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text(yaml.safe_dump(TINY))
    work = tmp_path / "bench"
    assert scarcity.run_benchmark([overlay], work) == 0
    assert (work / ".dvc").is_dir() and (work / "k1" / "dvc.lock").is_file()
    # a second k: the finished k = 1 cells are DVC-cached, only k = all runs
    TINY["scarcity"]["ks"] = [1, "all"]
    TINY["scarcity"]["report_ks"] = ["all"]  # k = all also runs evaluate and report
    overlay.write_text(yaml.safe_dump(TINY))
    assert scarcity.run_benchmark([overlay], work, log_name="second.log") == 0
    log = (work / "second.log").read_text()
    assert (
        "Running stage 'k1/dvc.yaml:classify@none-0'" not in log and "Running stage 'k1/dvc.yaml:pretrain'" not in log
    )
    assert "Running stage 'kall/dvc.yaml:classify@none-0'" in log, log[-3000:]

    records = json.loads((work / "metrics" / "scarcity.json").read_text())
    keys = {"dataset", "k", "method", "dose", "seed", "total", "macro_f1", "defect_recall", "normal_recall"}
    assert all(set(r) == keys | {"val_macro_f1"} for r in records) and len(records) == 2 * 3
    assert all(0 <= r["val_macro_f1"] <= 100 for r in records)
    assert {(r["k"], r["method"]) for r in records} == {(k, m) for k in (1, "all") for m in TINY["classify"]["methods"]}
    for r in records:
        assert r["dataset"] == "tiny" and 0 <= r["macro_f1"] <= 100
        assert r["dose"] == 0 if r["method"] == "none" else r["dose"] in (1, "all")
    # the k = 1 pipeline learned from one image per defect class: its augment provenance says so
    aug = json.loads((work / "k1" / "data" / "augmented" / "copy_paste" / "augment.json").read_text())
    assert aug["k_shot"] == 1
    summary = json.loads((work / "metrics" / "scarcity_summary.json").read_text())
    assert set(summary) == {"k=1", "k=all"} and summary["k=1"]["none"]["seeds"] == 1
    assert summary["k=1"]["none"]["val_macro_f1"]["mean"] == pytest.approx(records[0]["val_macro_f1"], abs=0.01)
    assert (work / "scarcity.png").stat().st_size > 1000
    assert "| 1 | copy_paste |" in (work / "scarcity.md").read_text()
    verdicts = json.loads((work / "verdicts.json").read_text())  # per k: what to use, against the noise
    assert set(verdicts) == {"k=1", "k=all"} and all(
        v["winner"] in ("copy_paste", "syndgan") for v in verdicts.values()
    )
    assert "- k = all: " in (work / "scarcity.md").read_text()
    plot = (work / "plots" / "scarcity.csv").read_text().splitlines()
    assert plot[0] == "k_index,k,method,macro_f1,macro_f1_std" and len(plot) == 1 + 6
    assert "Running stage 'kall/dvc.yaml:report'" in log and "Running stage 'k1/dvc.yaml:report'" not in log
    # the committed form: records, figure, params and a README saying what ran; a k published earlier
    # (here k = 5, by other code) stays, the ks of this run replace theirs
    report = tmp_path / "report"
    report.mkdir()
    earlier = [{**r, "k": 5} for r in records if r["k"] == 1] + [{**records[0], "macro_f1": 0.0}]
    del earlier[0]["val_macro_f1"]  # published before records kept val
    (report / "scarcity.json").write_text(json.dumps(earlier))
    (report / "runs.json").write_text(json.dumps([{"ks": ["5", "1"], "code": "abc1234", "minutes": 1, "cells": 3}]))
    (report / "report-k5").mkdir()  # k = 5's full report, published before
    assert scarcity.main(["--params", str(overlay), "--workdir", str(work), "--publish", str(report)]) == 0
    k1 = [r for r in records if r["k"] == 1]
    assert json.loads((report / "scarcity.json").read_text()) == k1 + earlier[:3] + records[len(k1) :]
    readme = (report / "README.md").read_text()
    assert "Scarcity benchmark: tiny" in readme and "| all | syndgan |" in readme and "| 5 | none |" in readme
    assert json.loads((report / "verdicts.json").read_text()) == verdicts  # k = 5 ran before verdicts: no line
    assert "- k = 1: " in readme and "- k = all: " in readme and "- k = 5: " not in readme
    run = json.loads((work / "runs.json").read_text())[-1]
    assert run["code"].split()[0] in git_version(scarcity.ROOT)
    assert (
        "- k 5: code abc1234, 1 min for 3 cells" in readme
        and f"- k 1, all (methods none, copy_paste, syndgan): code {run['code']}" in readme
    )
    assert (report / "params" / "kall.yaml").is_file() and (report / "report-kall" / "report.html").is_file()
    assert "- k 5: the full report (evaluate, report) is in `report-k5/report.html`\n" in readme  # no report.md
    assert (
        f"- k all: the full report (evaluate, report) is in `report-kall/report.html`, made by code {run['code']}"
        in readme
    )
    assert {p.name for p in (report / "report-kall").iterdir()} == {"report.md", "report.html", "figures"}
    # a k whose report is incomplete in the work folder: an error naming the file, the published one untouched
    published = {p: p.read_bytes() for p in report.rglob("*") if p.is_file()}
    (work / "kall" / "reports" / "report.md").unlink()
    assert scarcity.main(["--params", str(overlay), "--workdir", str(work), "--publish", str(report)]) == 1
    assert "kall/reports/report.md: not found" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in report.rglob("*") if p.is_file()} == published


def test_bad_scarcity_params_name_the_key(tmp_path, capsys):
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump({"scarcity": {"ks": [10, 10]}}))
    assert scarcity.main(["--params", str(overlay), "--workdir", str(tmp_path / "w")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scarcity.ks" in err[0]
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("scorer, pretrain", [("none", False), ("discriminator", True)])
def test_pretraining_runs_only_when_syndgan_or_the_gate_needs_it(tmp_path, scorer, pretrain):
    overlay = tmp_path / "o.yaml"
    gate = {"augment": {"gate": {"scorer": scorer}}, "scarcity": {"ks": [1]}}
    overlay.write_text(yaml.safe_dump({"classify": {"methods": ["none", "copy_paste"]}, **gate}))
    scarcity.write_project([overlay], tmp_path / "work")
    stages = yaml.safe_load((tmp_path / "work" / "k1" / "dvc.yaml").read_text())["stages"]
    assert ("pretrain" in stages) == pretrain and "train_synth" not in stages
    # augment@copy_paste depends on the discriminator exactly when pretraining makes it
    scorer_dep = stages["augment"]["foreach"]["copy_paste"]["scorer"]
    assert scorer_dep.endswith("discriminator.pt") == pretrain


@pytest.mark.parametrize("methods", [["none", "generation"], ["none", "copy_paste"], ["none", "syndgan", "generation"]])
def test_train_generation_runs_only_when_generation_is_compared(tmp_path, methods):
    overlay = tmp_path / "o.yaml"
    overlay.write_text(yaml.safe_dump({"classify": {"methods": methods}, "scarcity": {"ks": [1]}}))
    scarcity.write_project([overlay], tmp_path / "work")
    stages = yaml.safe_load((tmp_path / "work" / "k1" / "dvc.yaml").read_text())["stages"]
    assert ("train_generation" in stages) == ("generation" in methods)
    assert ("pretrain" in stages) == (methods != ["none", "copy_paste"])  # the generators start from pretraining
    assert ("train_synth" in stages) == ("syndgan" in methods)
    assert set(stages["augment"]["foreach"]) == set(methods)


def _records(k, methods, macro_f1):
    keys = ("total", "defect_recall", "normal_recall", "val_macro_f1")
    return [
        {"dataset": "tiny", "k": k, "method": m, "dose": 0 if m == "none" else 30, "seed": 0, "macro_f1": macro_f1,
         **dict.fromkeys(keys, 50.0)}
        for m in methods
    ]  # fmt: skip


def test_publish_replaces_only_the_methods_a_run_covers(tmp_path):
    """A later run of some methods at a k replaces just their rows; the others, and the run and params that
    made them, stay listed."""
    work, report = tmp_path / "work", tmp_path / "report"
    overlay = tmp_path / "o.yaml"
    overlay.write_text(
        yaml.safe_dump({"classify": {"methods": ["none", "hybrid"]}, "scarcity": {"ks": [5], "report_ks": []}})
    )
    (work / "k5").mkdir(parents=True)
    (work / "params.yaml").write_text(yaml.safe_dump(scarcity.merged_params([overlay]), sort_keys=False))
    (work / "k5" / "params.yaml").write_text("run: hybrid\n")
    (work / "metrics").mkdir()
    (work / "metrics" / "scarcity.json").write_text(json.dumps(_records(5, ["none", "hybrid"], 60.0)))
    (work / "runs.json").write_text(json.dumps([{"ks": ["5"], "code": "new1234", "minutes": 2.0, "cells": 2}]))
    report.mkdir()
    (report / "params").mkdir()
    (report / "params" / "k5.yaml").write_text("run: earlier\n")
    earlier = _records(5, ["none", "cutmix", "syndgan"], 40.0) + _records(10, ["none"], 45.0)
    (report / "scarcity.json").write_text(json.dumps(earlier))
    old_runs = [
        {"ks": ["5", "10"], "code": "abc1234", "minutes": 9.0, "cells": 4},  # before runs named their methods
        {"ks": ["5"], "code": "def5678", "minutes": 3.0, "cells": 1, "methods": ["none"]},  # all replaced now
    ]
    (report / "runs.json").write_text(json.dumps(old_runs))
    assert scarcity.main(["--params", str(overlay), "--workdir", str(work), "--publish", str(report)]) == 0
    got = json.loads((report / "scarcity.json").read_text())
    assert [(r["k"], r["method"], r["macro_f1"]) for r in got] == [
        (5, "none", 60.0),
        (5, "cutmix", 40.0),
        (5, "syndgan", 40.0),
        (5, "hybrid", 60.0),
        (10, "none", 45.0),
    ]  # fmt: skip  (none first, the baseline)
    runs = json.loads((report / "runs.json").read_text())
    assert [(r["code"], r["ks"]) for r in runs] == [("abc1234", ["5", "10"]), ("new1234", ["5"])]
    assert runs[-1]["methods"] == ["none", "hybrid"] and runs[-1]["params"] == {"5": "params/k5-none-hybrid.yaml"}
    assert (report / "params" / "k5.yaml").read_text() == "run: earlier\n"  # cutmix's and syndgan's rows
    assert (report / "params" / "k5-none-hybrid.yaml").read_text() == "run: hybrid\n"
    readme = (report / "README.md").read_text()
    assert "- k 5 (methods none, hybrid): code new1234, 2.0 min for 2 cells; `params/k5-none-hybrid.yaml`" in readme
    assert "- k 5, 10: code abc1234, 9.0 min for 4 cells; `params/k5.yaml`, `params/k10.yaml`" in readme
    assert "def5678" not in readme
    # the same run again: its rows are replaced, not added twice
    assert scarcity.main(["--params", str(overlay), "--workdir", str(work), "--publish", str(report)]) == 0
    assert json.loads((report / "scarcity.json").read_text()) == got
    assert [(r["code"], r["ks"]) for r in json.loads((report / "runs.json").read_text())] == [
        ("abc1234", ["5", "10"]), ("new1234", ["5"])
    ]  # fmt: skip
    # a third run redoes the rest of k = 5: the first run keeps only k = 10, its k5.yaml goes with its rows
    overlay.write_text(
        yaml.safe_dump({"classify": {"methods": ["cutmix", "syndgan"]}, "scarcity": {"ks": [5], "report_ks": []}})
    )
    (work / "params.yaml").write_text(yaml.safe_dump(scarcity.merged_params([overlay]), sort_keys=False))
    (work / "metrics" / "scarcity.json").write_text(json.dumps(_records(5, ["cutmix", "syndgan"], 70.0)))
    (work / "runs.json").write_text(json.dumps([{"ks": ["5"], "code": "third99", "minutes": 1.0, "cells": 2}]))
    assert scarcity.main(["--params", str(overlay), "--workdir", str(work), "--publish", str(report)]) == 0
    got = json.loads((report / "scarcity.json").read_text())
    assert [(r["method"], r["macro_f1"]) for r in got if r["k"] == 5] == [
        ("none", 60.0), ("cutmix", 70.0), ("syndgan", 70.0), ("hybrid", 60.0)
    ]  # fmt: skip
    runs = json.loads((report / "runs.json").read_text())
    assert [(r["code"], r["ks"]) for r in runs] == [("abc1234", ["10"]), ("new1234", ["5"]), ("third99", ["5"])]
    assert sorted(f.name for f in (report / "params").iterdir()) == ["k5-cutmix-syndgan.yaml", "k5-none-hybrid.yaml"]
