"""The report stage on stage outputs in their real formats (tiny processed data and augment outputs made by the
augment stage; evaluate / classify / train_synth JSONs and training logs with random numbers)."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
from evaluate_helpers import make_processed, recon_metrics, write_params, write_synthesizer
from PIL import Image

from pipeline import report
from pipeline.config import load_params
from syndgan.classify import aggregate_runs, classification_metrics
from syndgan.classify.verdict import sentence, verdict

NAMES = ["normal", "bump", "dust"]
METHODS = ["none", "copy_paste", "syndgan"]


def fake_evaluation(rng) -> dict:
    sets = ["real_train", "copy_paste", "syndgan", "syndgan_no_pretrain"]
    synthesis = {}
    for s in sets:
        synthesis[s] = {}
        for c in ["bump", "dust", "all"]:
            synthesis[s][c] = {
                "images": int(rng.integers(2, 60)),
                "reference_images": int(rng.integers(2, 10)),
                "fid_effnet": float(rng.uniform(5, 300)),
                "kid_effnet_x1e3_mean": float(rng.uniform(-5, 200)),
                "kid_effnet_x1e3_std": float(rng.uniform(0, 50)),
                "kid_effnet_subset_size": 3.0,
                "ic_perceptual_effnet": float(rng.uniform(0, 4)),
                "ic_perceptual_effnet_all_clusters": 1.0,
                "ic_perceptual_effnet_clusters": 2.0,
                "notes": "",
            }
    synthesis["syndgan"]["dust"].update(fid_effnet=None, kid_effnet_x1e3_mean=None, notes="fid_effnet: n/a (1 real)")
    recon = {
        "perceptual": "perceptual_effnet",
        "models": {
            "syndgan": recon_metrics(*rng.uniform(0.1, 0.3, 2)),
            "no_pretrain": recon_metrics(*rng.uniform(0.2, 0.4, 2), "no_pretrain"),
        },
        "not_run": {"no_inversion": "metrics/train_synth_ablations/no_inversion.json not found"},
        "order": ["syndgan", "no_pretrain", "no_inversion"],
    }
    return {
        "classes": ["bump", "dust"],
        "metric_names": {"fid": "fid_effnet", "kid": "kid_effnet", "ic": "ic_perceptual_effnet"},
        "reference": "real test defects (split == test), per class",
        "max_images_per_class": 64,
        "sets": sets,
        "synthesis": synthesis,
        "not_run": {"cutmix": "cutmix renders no images (applied at classifier training time)"},
        "reconstruction": recon,
    }


def write_classify(root, rng, seeds=(0, 1)) -> dict:
    runs, preds = [], {}
    for method in METHODS:
        for seed in seeds:
            y = rng.integers(0, 3, 30).tolist()
            pred = [t if rng.random() < 0.7 else int(rng.integers(0, 3)) for t in y]
            preds.setdefault(method, []).append((y, pred))
            m = {**classification_metrics(y, pred, NAMES), "val_macro_f1": float(rng.random())}
            dose = "0" if method == "none" else "all"
            folder = root / "reports" / "classify" / f"{method}-s{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            doc = {"method": method, "seed": seed, "classes": NAMES, "doses": {dose: m}}
            (folder / "metrics.json").write_text(json.dumps(doc))
            runs.append({"method": method, "seed": seed, "dose": dose, **m})
    agg = aggregate_runs(runs)
    (root / "metrics" / "classify.json").write_text(json.dumps(agg, sort_keys=True))
    chosen = {m: next(s for s in doses.values() if s["selected"]) for m, doses in agg.items()}
    judged = verdict(chosen, preds, len(NAMES))
    (root / "metrics" / "classify_verdict.json").write_text(json.dumps({**judged, "sentence": sentence(judged)}))
    return agg


def write_logs(root, rng) -> None:
    pre = root / "plots" / "pretrain"
    pre.mkdir(parents=True)
    steps = np.arange(10, 110, 10)
    pd.DataFrame({"step": steps, "loss_d": rng.uniform(0, 2, 10), "loss_g": rng.uniform(0, 2, 10)}).to_csv(
        pre / "losses.csv", index=False
    )
    pd.DataFrame({"step": [0, 100], "fid_effnet": [250.0, 120.0]}).to_csv(pre / "fid.csv", index=False)
    samples = root / "models" / "pretrain" / "samples"
    samples.mkdir(parents=True)
    for step in (50, 100):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(samples / f"step_{step:07d}.png")
    (root / "metrics" / "pretrain.json").write_text(
        json.dumps({"fid_effnet_start": 250.0, "fid_effnet": 120.0, "steps": 100, "images_per_s": 9.5})
    )
    cols = {k: rng.uniform(0, 1, 10) for k in ("loss_d", "loss_g", "l1", "adv", "perceptual", "inversion")}
    ts = root / "plots" / "train_synth"
    ts.mkdir(parents=True)
    pd.DataFrame({"step": steps, **cols}).to_csv(ts / "losses.csv", index=False)
    ab = root / "models" / "train_synth_ablations" / "no_pretrain"
    ab.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"step": steps, **cols}).to_csv(ab / "losses.csv", index=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from pipeline import augment

    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(7)
    with contextlib.chdir(root):
        make_processed(root / "data" / "processed")
        write_synthesizer(root / "models" / "train_synth" / "synthesizer.pt")
        params = load_params(write_params(root))
        for method in ("none", "copy_paste", "syndgan"):
            augment.run(params, method)
        (root / "metrics").mkdir()
        evaluation = fake_evaluation(rng)
        (root / "metrics" / "evaluate.json").write_text(json.dumps(evaluation, sort_keys=True))
        agg = write_classify(root, rng)
        write_logs(root, rng)
        html_path = report.run(params)
    return root, params, evaluation, agg, html_path


def _rows(md: str, first_cell: str) -> list[list[str]]:
    """Cells of every Markdown table row whose first cell is ``first_cell``."""
    out = []
    for line in md.splitlines():
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
            if cells[0] == first_cell:
                out.append(cells)
    return out


def _section(md: str, marker: str) -> str:
    """The ``## `` section whose heading contains ``marker``."""
    return next(sec for sec in md.split("\n## ") if marker in sec.splitlines()[0])


def test_builds_markdown_and_self_contained_html(project):
    root, _, _, _, html_path = project
    md = (root / "reports" / "report.md").read_text()
    html = html_path.read_text()
    figures = sorted((root / "reports" / "figures").glob("*.png"))
    names = {p.name for p in figures}
    assert {"grid_bump.png", "grid_dust.png", "confusion.png"} <= names
    assert {"curves_pretrain.png", "curves_train_synth.png", "pretrain_samples.png"} <= names
    last = root / "models" / "pretrain" / "samples" / "step_0000100.png"
    assert (root / "reports" / "figures" / "pretrain_samples.png").read_bytes() == last.read_bytes()
    for p in figures:
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 50
        assert f"](figures/{p.name})" in md  # Markdown links the files
    embedded = re.findall(r'<img [^>]*src="([^"]*)"', html)
    assert len(embedded) == len(figures)
    assert all(src.startswith("data:image/png;base64,") for src in embedded)
    assert "http://" not in html and "https://" not in html and "href=" not in html and "url(" not in html
    for heading in ("Table 3", "Table 1", "Tables 2 and 5", "Table 4", "Training curves", "Parameters"):
        assert heading in md and heading in html


def test_numbers_equal_the_input_jsons(project):
    root, _, ev, agg, html_path = project
    md = (root / "reports" / "report.md").read_text()
    html = html_path.read_text()
    pooled = ev["synthesis"]["syndgan"]["all"]
    row = _rows(md, "SyNDGAN (ours)")[0]  # the pooled synthesis table comes first
    assert row[1:7] == [
        str(pooled["images"]),
        str(pooled["reference_images"]),
        f"{pooled['fid_effnet']:.2f}",
        f"{pooled['kid_effnet_x1e3_mean']:.2f} ± {pooled['kid_effnet_x1e3_std']:.2f}",
        "3",
        f"{pooled['ic_perceptual_effnet']:.4f}",
    ]
    assert f"{pooled['fid_effnet']:.2f}" in html
    real_rows = _rows(md, "Real (train vs test)")
    bump = ev["synthesis"]["real_train"]["bump"]
    assert [r for r in real_rows if r[1] == "bump"][0][4] == f"{bump['fid_effnet']:.2f}"
    dust = [r for r in _rows(md, "SyNDGAN (ours)") if len(r) > 1 and r[1] == "dust"][0]
    assert dust[4] == "n/a" and dust[5] == "n/a"
    # reconstruction (Tables 2/5)
    rec = ev["reconstruction"]["models"]
    for label, key in (("SyNDGAN (ours)", "syndgan"), ("w/o Pretrained", "no_pretrain")):
        row = _rows(_section(md, "Tables 2 and 5"), label)[0]
        assert row[1] == f"{rec[key]['recon_perceptual_effnet_normal']:.4f}"
        assert row[2] == f"{rec[key]['recon_perceptual_effnet_defect']:.4f}"
    assert "no_inversion" in md
    # classification (Table 4): % mean ± std over seeds
    s = agg["syndgan"]["all"]
    row = [r for r in _rows(_section(md, "Table 4"), "SyNDGAN (ours)") if r[1] == "all"][0]
    pct = lambda st: f"{100 * st['mean']:.1f} ± {100 * st['std']:.1f}"  # noqa: E731
    assert row[2] == "2"
    assert row[3:6] == [pct(s["per_class_accuracy"][c]) for c in NAMES]
    assert row[6:9] == [pct(s["total_accuracy"]), pct(s["macro_f1"]), pct(s["defect_recall"])]
    assert pct(s["total_accuracy"]) in html
    verdict_doc = json.loads((root / "metrics" / "classify_verdict.json").read_text())
    assert f"**Verdict.** {verdict_doc['sentence']}" in _section(md, "Table 4")  # the table ends with the winner
    # Table 3: train pool + synthetic images per method, counted from the augment manifests
    manifest = pd.read_parquet(root / "data" / "augmented" / "copy_paste" / "manifest.parquet")
    added = int((manifest["label"] == "bump").sum())
    assert _rows(md, "bump")[0][4:] == ["4", f"{4 + added} (+{added})", f"{4 + added} (+{added})"]


def test_grid_captions_name_the_columns_drawn(project, monkeypatch):
    from syndgan.report.document import Document, Figure

    root, params, _, _, _ = project
    drawn, draw = [], report.image_grid  # the columns the figure function is given: those it draws
    monkeypatch.setattr(report, "image_grid", lambda g, cols, title: drawn.append(cols) or draw(g, cols, title))
    doc = Document("t")
    with contextlib.chdir(root):
        report.section_grids(params, doc, report.Figures(root / "figures"))
    captions = [b.caption for b in doc.blocks if isinstance(b, Figure)]
    assert drawn[0] == ["normal", "mask", "Copy-paste", "SyNDGAN (ours)", "real (mask source)"]
    assert [c.split(": ", 1)[1].split(" | ") for c in captions] == drawn  # every column, in order, none more
    md = (root / "reports" / "report.md").read_text()
    assert "*bump: normal | mask | Copy-paste | SyNDGAN (ours) | real (mask source)*" in md


def test_params_and_code_version_are_embedded(project):
    root, params, _, _, _ = project
    md = (root / "reports" / "report.md").read_text()
    assert params.path.read_text().strip() in md
    assert "Code version: `" in md


def test_confusion_is_summed_over_seeds(project):
    root, params, _, _, _ = project
    with contextlib.chdir(root):
        figs = report.Figures(root / "figures")
        cm, classes, seeds, dose = report.summed_confusion(params, "copy_paste", "all", figs)
        assert report.summed_confusion(params, "cutmix", "0", figs) is None  # no such run here
    assert list(figs.read.values()) == ["classify@copy_paste-0", "classify@copy_paste-1"]  # the runs summed
    runs = [
        json.loads((root / "reports" / "classify" / f"copy_paste-s{s}" / "metrics.json").read_text()) for s in (0, 1)
    ]
    expected = sum(np.asarray(r["doses"]["all"]["confusion"]) for r in runs)
    assert classes == NAMES and seeds == [0, 1] and dose == "all"
    np.testing.assert_array_equal(cm, expected)


def test_missing_inputs_say_not_run(tmp_path):
    with contextlib.chdir(tmp_path):
        params = load_params(write_params(tmp_path))
        report.run(params)
    md = (tmp_path / "reports" / "report.md").read_text()
    sections = md.split("\n## ")[1:]
    assert len(sections) == 8  # the quality gate section included
    for sec in sections[:-1]:  # every data section, the provenance one excepted
        assert "Not run" in sec, sec.splitlines()[0]
    assert "metrics/evaluate.json not found" in md and "metrics/classify.json not found" in md
    assert params.path.read_text().strip() in md  # params are still embedded
    html = (tmp_path / "reports" / "report.html").read_text()
    assert html.count('class="notrun"') >= 7 and "<img" not in html


def test_partial_inputs_only_the_missing_sections_say_not_run(tmp_path):
    with contextlib.chdir(tmp_path):
        make_processed(tmp_path / "data" / "processed")
        params = load_params(write_params(tmp_path))
        report.run(params)
    md = (tmp_path / "reports" / "report.md").read_text()
    dataset = md.split("\n## ")[1]
    assert "| dust | 3 | 1 | 1 | 3 |" in dataset  # train / val / test / pool counts from the index
    assert "no augment output with images" in dataset


def test_git_version(tmp_path):
    assert report.git_version(tmp_path).startswith("unknown")
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "a.txt").write_text("1")
    subprocess.run([*git, "-C", str(tmp_path), "add", "a.txt"], check=True)
    subprocess.run([*git, "-C", str(tmp_path), "commit", "-qm", "x"], check=True)
    head = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert report.git_version(tmp_path) == f"{head.strip()} (clean)"
    (tmp_path / "untracked.txt").write_text("outputs do not count")
    assert report.git_version(tmp_path).endswith("(clean)")
    (tmp_path / "a.txt").write_text("2")
    assert "dirty" in report.git_version(tmp_path)
