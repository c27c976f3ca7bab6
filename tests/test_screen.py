"""Lever screening: variants through DVC sharing one cache, compared on val."""

import json
from pathlib import Path

import pytest
import yaml

from pipeline.config import parse_params
from pipeline.experiments import screen
from pipeline.experiments.scarcity import merged_params
from syndgan.errors import ConfigError, DataError

TINY = {
    "demo": {"parts": 16, "resolution": 64, "defect_fraction": 0.6},
    "rasterize": {"resolution": 32},
    "pretrain": {  # for the gate's discriminator: a training stage the variants share
        "resolution": 32, "steps": 2, "batch_size": 4, "z_dim": 16, "w_dim": 16, "g_channel_base": 128,
        "g_channel_max": 32, "d_channel_base": 128, "d_channel_max": 16, "d_proj_channels": 4,
        "fid_samples": 0, "fid_every": 0, "sample_every": 1, "checkpoint_every": 1, "device": "cpu",
    },
    "augment": {"targets": {"mode": "count", "count": 2}, "gate": {"scorer": "discriminator"}},
    "classify": {
        "methods": ["none", "copy_paste"],
        "doses": ["all"],
        "train": {"resolution": 32, "batch_size": 4, "epochs": 1, "eval_from_epoch": 0},
    },
    "scarcity": {"dataset": "tiny", "ks": [5, "all"], "report_ks": ["all"]},
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]


def test_val_rows_take_the_val_chosen_dose_only():
    metrics = {
        "none": {"0": {"selected": True, "val_macro_f1": {"mean": 0.5}, "macro_f1": {"mean": 0.9}}},
        "copy_paste": {
            "30": {"selected": False, "val_macro_f1": {"mean": 0.7}, "macro_f1": {"mean": 0.1}},
            "100_w0.3": {"selected": True, "val_macro_f1": {"mean": 0.6}, "macro_f1": {"mean": 0.2}},
        },
    }
    rows = screen.val_rows("base", metrics, ["none", "copy_paste"])
    assert rows == [
        {"variant": "base", "method": "none", "dose": "0", "val_macro_f1": 50.0},
        {"variant": "base", "method": "copy_paste", "dose": "100_w0.3", "val_macro_f1": 60.0},
    ]
    text = screen.markdown(rows + [{"variant": "gate", "method": "none", "dose": "0", "val_macro_f1": 52.25}], 10, 0)
    assert "| base | 50.0 (0) | 60.0 (100_w0.3) |" in text and "| gate | 52.2 (0) | - |" in text
    assert "90" not in text  # test numbers never reach the screening table
    metrics["none"]["0"]["selected"] = False
    with pytest.raises(DataError, match="no single val-chosen dose"):
        screen.val_rows("base", metrics, ["none", "copy_paste"])


def test_variant_names_must_be_unique_and_not_reserved(tmp_path):
    a, b = tmp_path / "a" / "base.yaml", tmp_path / "b" / "base.yaml"
    cache = tmp_path / "cache.yaml"
    for f in (a, b, cache):
        f.parent.mkdir(exist_ok=True)
        f.write_text("")
    with pytest.raises(ConfigError, match="must be unique"):
        screen.run_screen([], [a, b], tmp_path / "w", 5, 0)
    with pytest.raises(ConfigError, match="'cache' is reserved"):
        screen.run_screen([], [cache], tmp_path / "w", 5, 0)


@pytest.mark.slow
def test_variants_share_the_run_cache_and_differ_only_where_they_change(tmp_path, capsys):
    overlay = tmp_path / "tiny.yaml"
    overlay.write_text(yaml.safe_dump(TINY))
    base, rules = tmp_path / "base.yaml", tmp_path / "rules.yaml"
    base.write_text("")
    rules.write_text(yaml.safe_dump({"classify": {"synthetic": [{"weight": 1.0}, {"weight": 0.3, "share": 0.25}]}}))
    work = tmp_path / "screen"
    assert screen.run_screen([overlay], [base, rules], work, 5, 1) == 0

    for name in ("base", "rules"):
        params = yaml.safe_load((work / name / "k5" / "params.yaml").read_text())
        assert params["classify"]["seeds"] == [1] and params["rasterize"]["k_shot"] == 5
        assert not (work / name / "kall").exists() and not (work / name / "k5" / "reports" / "report.html").exists()
    log = (work / "rules" / "repro.log").read_text()
    # the second variant restores what it shares with the first from the shared run cache, trainings included:
    # their resume states are no (persistent) DVC output, and a work folder caches every output
    for stage in ("demo", "ingest", "rasterize", "pretrain", "augment@copy_paste"):
        assert f"Stage 'k5/dvc.yaml:{stage}' is cached - skipping run" in log, log[-3000:]
    first, second = (work / name / "k5" / "models" / "pretrain" for name in ("base", "rules"))
    assert (first / "generator.pt").read_bytes() == (second / "generator.pt").read_bytes()  # train_seconds too
    assert not (work / "base" / "k5" / ".syndgan" / "resume" / "pretrain").exists()  # finished: nothing to resume
    # ... and trains only the classifier cells its overlay changes
    assert "Running stage 'k5/dvc.yaml:classify@copy_paste-1'" in log
    rows = json.loads((work / "screen.json").read_text())
    assert [(r["variant"], r["method"]) for r in rows] == [
        (v, m) for v in ("base", "rules") for m in ("none", "copy_paste")
    ]
    chosen = {r["variant"]: r["dose"] for r in rows if r["method"] == "copy_paste"}
    assert chosen["base"] == "all" and chosen["rules"] in ("all", "all_w0.3s0.25")
    assert "| rules |" in (work / "screen.md").read_text()
    assert "test %" not in capsys.readouterr().out  # the benchmark's test table is not shown while screening

    # screening one variant again keeps the other's rows; --collect rebuilds the same table from the folders
    assert screen.run_screen([overlay], [rules], work, 5, 1) == 0
    assert json.loads((work / "screen.json").read_text()) == rows
    (work / "screen.json").unlink()
    assert screen.main(["--params", str(overlay), "--collect", "--k", "5", "--seed", "1", "--workdir", str(work)]) == 0
    assert json.loads((work / "screen.json").read_text()) == rows


def test_a_rerun_variant_replaces_its_rows_in_place():
    row = lambda v, m, f: {"variant": v, "method": m, "dose": "0", "val_macro_f1": f}  # noqa: E731
    before = [row("base", "none", 1.0), row("patch", "none", 2.0), row("gate", "none", 3.0)]
    new = [row("patch", "none", 5.0), row("patch", "syndgan", 6.0), row("fresh", "none", 7.0)]
    merged = screen.merge_rows(before, new)
    assert [(r["variant"], r["method"], r["val_macro_f1"]) for r in merged] == [
        ("base", "none", 1.0), ("patch", "none", 5.0), ("patch", "syndgan", 6.0), ("gate", "none", 3.0),
        ("fresh", "none", 7.0),
    ]  # fmt: skip


def test_collect_reads_every_finished_variant_folder_of_that_seed(tmp_path, capsys):
    work = tmp_path / "screen"
    metrics = {"none": {"0": {"selected": True, "val_macro_f1": {"mean": 0.5}}}}
    defaults = merged_params([])
    for name, seed in (("zeta", 0), ("base", 0), ("other_seed", 1), ("cache", 0)):
        params = defaults | {"classify": {**defaults["classify"], "methods": ["none"], "seeds": [seed]}}
        (work / name / "k10" / "metrics").mkdir(parents=True)
        (work / name / "params.yaml").write_text(yaml.safe_dump(params))
        (work / name / "k10" / "metrics" / "classify.json").write_text(json.dumps(metrics))
    (work / "unfinished").mkdir()
    (work / "unfinished" / "params.yaml").write_text((work / "base" / "params.yaml").read_text())
    rows = screen.collect(work, 10, 0)
    assert [(r["variant"], r["val_macro_f1"]) for r in rows] == [("base", 50.0), ("zeta", 50.0)]
    args = ["--params", str(ROOT / "data/configs/scarcity-demo.yaml"), "--collect", "--workdir"]
    assert screen.main([*args, str(work)]) == 0 and "| zeta | 50.0 (0) |" in (work / "screen.md").read_text()
    assert screen.main([*args, str(tmp_path / "empty")]) == 1
    assert "no variant folder finished at k = 10, seed 0" in capsys.readouterr().err


@pytest.mark.parametrize("variant", sorted((ROOT / "data/configs/screen").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_variant_is_valid_on_the_magnetic_tile_configs(variant):
    files = [ROOT / "data/configs/magnetic-tile.yaml", ROOT / "data/configs/scarcity-magnetic-tile.yaml", variant]
    params = parse_params(merged_params(files))
    assert params.scarcity.dataset == "magnetic-tile"
    assert params.classify.synthetic[0].label() == ""  # the default rule stays first: base is always comparable
