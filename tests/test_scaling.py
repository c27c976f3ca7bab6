"""The scaling study end to end on demo data at 32 px: one pretraining, a synthesis training continued over two
budgets, each snapshot measured on val, the published records and figure."""

import copy
import json
import logging
import shutil

import pytest
import torch
import yaml
from test_scarcity import TINY

from pipeline.experiments import scaling
from pipeline.experiments.scaling_report import FIGURES, quality_value
from syndgan.models.snapshots import load_checkpoint

STUDY = copy.deepcopy(TINY)
STUDY["classify"]["doses"] = [2]
STUDY["train_synth"]["eval_split"] = "val"
STUDY["evaluate"] = {"kid_subset_size": 2}
STUDY["scarcity"] = {"dataset": "tiny", "ks": ["all"], "report_ks": []}


@pytest.mark.slow
def test_a_chained_training_measured_at_every_budget(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    overlay = tmp_path / "study.yaml"
    overlay.write_text(yaml.safe_dump(STUDY))
    work, out = tmp_path / "work", tmp_path / "published"
    args = ["--params", str(overlay), "--workdir", str(work), "--steps", "1", "3", "--out", str(out)]
    assert scaling.main(args) == 0
    project = work / "kall"
    # 3 steps continued the 1-step state rather than starting again
    assert any(r.getMessage().endswith("at step 1") and "resuming from" in r.getMessage() for r in caplog.records)
    # the snapshot after 3 steps is the network a single 3-step run ends with (state carried over, RNG included)
    chained = load_checkpoint(project / "chain" / "steps3" / "synthesizer.pt")["state"]
    single_dir = tmp_path / "single"  # the same project and pretraining, a 3-step training in one go
    shutil.copytree(project, single_dir / "kall", ignore=shutil.ignore_patterns("chain", "scaling"))
    steps = ["--steps", "3", "--phase", "chain"]
    assert scaling.main(["--params", str(overlay), "--workdir", str(single_dir), *steps]) == 0
    single = load_checkpoint(single_dir / "kall" / "chain" / "steps3" / "synthesizer.pt")["state"]
    assert all(torch.equal(v, single[k]) for k, v in chained.items())

    doc = json.loads((out / "scaling.json").read_text())
    assert [r["train_synth_steps"] for r in doc["records"]] == [1, 3]
    assert set(doc["references"]) == {"none", "copy_paste"}  # the lines the curve is read against
    for r in doc["records"]:
        assert r["quality_reference"] == "real val defects" and r["pretrain_steps"] == 2 and r["code"]
        assert 0 <= r["val_macro_f1"] <= 1 and len(r["val_macro_f1_seeds"]) == 1 and r["dose"].startswith("2")
        assert r["recon_l1_defect_region"] > 0 and r["cpu_hours"] > 0
        assert {"all", "bump", "chipping", "dust"} <= set(r["quality"]) and "fid_effnet" in r["quality"]["all"]
        assert all(quality_value(r, key) is not None for key, _, _ in FIGURES)  # every panel has its values
    assert doc["records"][1]["cpu_hours"] > doc["records"][0]["cpu_hours"]
    assert (
        doc["records"][1]["train_images"] - doc["records"][0]["train_images"] == 2 * STUDY["train_synth"]["batch_size"]
    )
    assert (out / "scaling.png").stat().st_size > 1000
    assert "| base | 2 | 3 | 32 | 0.0 |" in (out / "README.md").read_text()
    # test is never read: no classifier cell of the study ranks on it, and its records hold no test figure
    assert not any("test" in k for r in doc["records"] for k in r if k != "quality_reference")
    # another axis as a variant: more pretraining, its own folder, published beside the base study
    (tmp_path / "pre4.yaml").write_text("pretrain: {steps: 4}\n")
    variant = ["--params", str(overlay), str(tmp_path / "pre4.yaml"), "--workdir", str(work), "--variant", "pre4"]
    assert scaling.main([*variant, "--steps", "1", "--out", str(out)]) == 0
    assert not (work / "pre4" / "kall" / "reports" / "classify" / "none-s0").exists()  # the base study's lines
    doc = json.loads((out / "scaling.json").read_text())
    assert [(r["variant"], r["pretrain_steps"], r["train_synth_steps"]) for r in doc["records"]] == [
        ("base", 2, 1), ("base", 2, 3), ("pre4", 4, 1)]  # fmt: skip
    assert set(doc["references"]) == {"none", "copy_paste"}
    # everything is kept: a second run measures nothing again
    before = (project / "scaling" / "steps3" / "record.json").stat().st_mtime_ns
    assert scaling.main([*args, "--phase", "measure", "publish"]) == 0
    assert (project / "scaling" / "steps3" / "record.json").stat().st_mtime_ns == before
