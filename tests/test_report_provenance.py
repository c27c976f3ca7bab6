"""What the report says about its inputs: which stages ran, the ablation rows, the confusion dose, the code
version and the confusion digits' size (small generated inputs, no training)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml
from evaluate_helpers import make_processed, recon_metrics, write_params, write_synthesizer
from PIL import Image

from pipeline import report
from pipeline.config import load_params
from syndgan.classify import aggregate_runs, classification_metrics
from syndgan.report.figures import CONFUSION_DPI, DIGIT_PT, REPORT_WIDTH_PX, confusion_figure

NAMES = ["normal", "bump", "dust"]


def _report(root, ablations=None) -> str:
    path = write_params(root)
    if ablations is not None:  # params that no longer list an ablation which ran earlier
        raw = yaml.safe_load(path.read_text())
        raw["train_synth"]["ablations"] = ablations
        path.write_text(yaml.safe_dump(raw))
    with contextlib.chdir(root):
        report.run(load_params(path))
    return (root / "reports" / "report.md").read_text()


def _section(md: str, marker: str) -> str:
    return next(sec for sec in md.split("\n## ") if marker in sec.splitlines()[0])


def test_a_stage_with_outputs_is_not_called_not_run(tmp_path):
    """train_synth's metrics without its loss log (an older layout): it ran; the report must not say otherwise."""
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "train_synth.json").write_text(json.dumps(recon_metrics(0.2, 0.3)))
    md = _report(tmp_path)
    assert "Not run: train_synth" not in md
    curves = _section(md, "Training curves")
    assert "train_synth ran (`metrics/train_synth.json`), but its loss log `plots/train_synth/losses.csv`" in curves
    assert "Not run: pretrain (no metrics/pretrain.json, no plots/pretrain/losses.csv)" in curves
    intro = md.split("\n## ")[0]
    assert "Stages whose outputs this report read: train_synth." in intro
    assert "No output (not run): pretrain, train_synth_ablation@no_pretrain" in intro


def test_every_method_shown_is_named_with_the_stages_that_made_it(tmp_path):
    """hybrid and generation images (no classify method either) are counted in the dataset table and drawn in the
    grids: their augment stages, train_generation (whose generators drew the generation images) and train_synth
    (whose network painted syndgan's and hybrid's) are in the provenance line, which names what was read only."""
    from pipeline import augment

    with contextlib.chdir(tmp_path):
        make_processed(tmp_path / "data" / "processed")
        write_synthesizer(tmp_path / "models" / "train_synth" / "synthesizer.pt")
        params = load_params(write_params(tmp_path))
        for method in ("copy_paste", "syndgan", "hybrid"):
            augment.run(params, method)
    # generation's output without training generators: copy_paste's images, listed unpaired as generation lists its
    folder = tmp_path / "data" / "augmented"
    shutil.copytree(folder / "copy_paste", folder / "generation")
    manifest = pd.read_parquet(folder / "generation" / "manifest.parquet")
    manifest.assign(method="generation", transform="[]").to_parquet(folder / "generation" / "manifest.parquet")
    md = _report(tmp_path)
    dataset, grids = _section(md, "Table 3"), _section(md, "Synthesized examples")
    for label in ("Hybrid (copy-paste, SyNDGAN seam)", "Generation only (fine-tuned GAN)"):
        assert f"w/ {label}" in dataset and f" | {label} | " in grids  # a table column, a grid column
    line = next(p for p in md.split("\n## ")[0].splitlines() if p.startswith("Stages whose outputs"))
    read, _, absent = line.removeprefix("Stages whose outputs this report read: ").partition(". No output (not run): ")
    assert read.split(", ") == [
        "rasterize", "train_synth", "train_generation",
        "augment@copy_paste", "augment@syndgan", "augment@generation", "augment@hybrid",
    ]  # fmt: skip
    absent = absent.rstrip(".").split(", ")
    assert "augment@none" in absent and "train_synth" not in absent  # a stage read is not called not run


def test_ablation_row_shown_when_its_metrics_file_exists(tmp_path):
    """no_pretrain's metrics file is here, params no longer list it and evaluate did not include it."""
    folder = tmp_path / "metrics" / "train_synth_ablations"
    folder.mkdir(parents=True)
    (tmp_path / "metrics" / "train_synth.json").write_text(json.dumps(recon_metrics(0.2, 0.3)))
    (folder / "no_pretrain.json").write_text(json.dumps(recon_metrics(0.4, 0.55, "no_pretrain")))
    evaluation = {"reconstruction": {"perceptual": "perceptual_effnet", "models": {}, "order": ["syndgan"]}}
    evaluation["reconstruction"]["models"]["syndgan"] = recon_metrics(0.2, 0.3)
    (tmp_path / "metrics" / "evaluate.json").write_text(json.dumps(evaluation))
    md = _section(_report(tmp_path, ablations=[]), "Reconstruction")
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    assert any(r.startswith("| SyNDGAN (ours) | 0.2000 | 0.3000 |") for r in rows), rows
    assert any(r.startswith("| w/o Pretrained | 0.4000 | 0.5500 |") for r in rows), rows
    assert "Not run" not in md


def test_confusion_matrices_are_at_the_dose_chosen_on_val(tmp_path):
    """Dose 100 wins on val, dose 0 on test: the matrices and the caption are dose 100's."""
    runs = []
    for seed in (0, 1):
        good = classification_metrics([0, 0, 1, 2], [0, 0, 1, 2], NAMES)  # perfect on test
        bad = classification_metrics([0, 0, 1, 2], [0, 1, 0, 0], NAMES)
        doses = {"0": {**good, "val_macro_f1": 0.2}, "100": {**bad, "val_macro_f1": 0.9}}
        for method in ("none", "copy_paste", "syndgan"):
            folder = tmp_path / "reports" / "classify" / f"{method}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "metrics.json").write_text(json.dumps({"classes": NAMES, "doses": doses}))
            runs += [{"method": method, "seed": seed, "dose": d, **m} for d, m in doses.items()]
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "classify.json").write_text(json.dumps(aggregate_runs(runs)))
    md = _section(_report(tmp_path), "Classification")
    caption = next(line for line in md.splitlines() if "each method at its dose chosen on val (" in line)
    assert "SyNDGAN (ours): dose 100, seeds [0, 1]" in caption and "dose 0" not in caption
    with contextlib.chdir(tmp_path):
        figs = report.Figures(tmp_path / "figures")
        cm, _, _, dose = report.summed_confusion(load_params(tmp_path / "params.yaml"), "syndgan", "100", figs)
    assert dose == "100" and cm.tolist() == [[2, 2, 0], [2, 0, 0], [2, 0, 0]]  # the val-chosen dose's errors


@pytest.mark.parametrize("panels", [1, 2, 4, 6])
def test_confusion_digits_are_at_least_12_px_in_the_report(panels):
    """The HTML shows a figure at most REPORT_WIDTH_PX wide: a wider PNG would be scaled down with its digits."""
    names = ["normal", "bump", "chipping", "dust"]
    cm = [[120, 3, 4, 5], [2, 10, 1, 0], [0, 1, 9, 2], [1, 0, 0, 7]]
    png = confusion_figure([(f"method {i} (dose all)", cm, names) for i in range(panels)])
    width = Image.open(io.BytesIO(png)).size[0]
    digit_px = DIGIT_PT / 72 * CONFUSION_DPI * min(1.0, REPORT_WIDTH_PX / width)
    assert digit_px >= 12, (width, digit_px)


def test_code_version_ignores_dvc_outputs_but_not_code(tmp_path):
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", "-C", str(tmp_path)]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "classify.json").write_text("{}")
    lock = {"schema": "2.0", "stages": {"agg": {"cmd": "x", "outs": [{"path": "metrics/classify.json"}]}}}
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock))
    subprocess.run([*git, "add", "code.py", "metrics/classify.json", "dvc.lock"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    # what `dvc repro` does before the report stage runs: rewrites tracked outputs and dvc.lock
    (tmp_path / "metrics" / "classify.json").write_text('{"f1": 0.5}')
    (tmp_path / "dvc.lock").write_text(yaml.safe_dump(lock) + "# updated\n")
    assert report.git_version(tmp_path) == f"{head} (clean)"
    (tmp_path / "code.py").write_text("x = 2\n")
    assert report.git_version(tmp_path) == f"{head} (dirty: uncommitted changes to code.py)"


def test_code_version_names_the_code_checkout_not_the_working_folder(tmp_path, monkeypatch):
    # a work folder inside another git checkout (runs/ of a second clone) must not lend its commit
    import subprocess

    from pipeline import provenance

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    code_root = Path(provenance.__file__).resolve().parent.parent
    code_head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=code_root, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert provenance.git_version().startswith(code_head)
