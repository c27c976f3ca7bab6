"""The generation-only baseline (issue 12; the paper's Projected FastGAN / ADA rows): train_generation fine-tunes
the pretrained generator per defect class (seeded, resumable), the augment method `generation` samples each class
from its own generator. On 32 px CPU fixtures: a processed dataset and random pretraining files."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from evaluate_helpers import CLASSES, COUNTS, make_processed, write_params
from PIL import Image
from synth_helpers import one_thread, write_pretrained  # noqa: F401 (fixture)

from pipeline.config import load_params
from syndgan.augment import check_provenance, create_method, generate_augmented
from syndgan.data.datasets import ProcessedImages
from syndgan.data.processed import ProcessedDataset, train_pool
from syndgan.errors import ConfigError, DataError
from syndgan.generation.finetune import as_pretrained, train_generation
from syndgan.generation.sampling import ClassGenerators
from syndgan.generation.settings import GenerationSettings

ROOT = Path(__file__).resolve().parents[1]
NAMES = [c["name"] for c in CLASSES]
TINY = dict(batch_size=2, steps=2, checkpoint_every=1, sample_every=1, log_every=1, device="cpu", progress=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory, one_thread):  # noqa: F811
    """A project folder: data/processed, models/pretrain (random 32 px fastgan + D), params.yaml, and the
    train_generation stage's output made by the stage itself."""
    from pipeline import train_generation as stage

    root = tmp_path_factory.mktemp("generation")
    make_processed(root / "data" / "processed")
    (root / "models" / "pretrain").mkdir(parents=True)
    write_pretrained(root / "models" / "pretrain")
    path = write_params(root, ablations=False)
    raw = yaml.safe_load(path.read_text())
    raw["train_generation"] = {**TINY, "threads": 1}
    raw["augment"]["generation"] = {"device": "cpu"}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with contextlib.chdir(root):
        summary = stage.run(load_params(path))
    assert summary["finished"] and set(summary["classes"]) == set(NAMES)
    return root


def _datasets(processed: Path) -> dict:
    pool = train_pool(ProcessedDataset.load(processed))
    return {
        n: ProcessedImages(processed, split="train", keep_ids=set(pool.loc[pool["label"] == n, "id"])) for n in NAMES
    }


def test_generators_file_carries_spec_classes_and_provenance(project):
    state = torch.load(project / "models/train_generation/generators.pt", map_location="cpu", weights_only=True)
    assert state["generator"]["name"] == "fastgan" and state["generator"]["img_resolution"] == 32
    assert state["classes"] == CLASSES and set(state["state"]) == set(NAMES)
    pool = train_pool(ProcessedDataset.load(project / "data" / "processed"))
    for name in NAMES:  # each class learned from its own train-pool images, nothing else
        assert state["sources"][name] == sorted(pool.loc[pool["label"] == name, "id"])
    assert state["normal_ids"] == sorted(pool.loc[pool["label"] == "normal", "id"])
    assert all(i.startswith("demo/train_") for i in state["normal_ids"] + sum(state["sources"].values(), []))
    assert (project / "plots/train_generation/bump.csv").is_file()
    assert (project / "models/train_generation/samples/dust/step_0000002.png").is_file()
    assert not (project / ".syndgan/resume/train_generation").exists()  # finished: the resume states are gone
    assert not (project / "models/train_generation/checkpoints").exists()
    # the loss and D's features are pretraining's (write_pretrained: hinge, the packaged weights)
    assert (state["settings"]["loss"], state["settings"]["feature_weights"]) == ("hinge", None)


def test_loss_and_feature_weights_must_be_pretrainings(project, tmp_path):
    pre = project / "models" / "pretrain"
    state = torch.load(pre / "generator.pt", weights_only=True)
    logistic = {**state, "settings": {**state["settings"], "loss": "logistic"}}
    assert as_pretrained(GenerationSettings(**TINY), logistic, "g.pt").loss == "logistic"
    assert as_pretrained(GenerationSettings(**TINY, loss="logistic"), logistic, "g.pt").loss == "logistic"
    with pytest.raises(ConfigError, match=r"feature_weights: 'w.pt', but .* None \(g.pt\)"):
        as_pretrained(GenerationSettings(**TINY, feature_weights="w.pt"), state, "g.pt")
    kw = dict(discriminator_checkpoint=pre / "discriminator.pt", classes=CLASSES, normal_ids=[])
    where = re.escape(f"({pre / 'generator.pt'})")
    with pytest.raises(ConfigError, match=rf"loss: 'logistic', but .* 'hinge' {where}"):  # before any training
        train_generation(
            GenerationSettings(**TINY, loss="logistic"), {}, tmp_path, generator_checkpoint=pre / "generator.pt", **kw
        )


def test_sampling_leaves_the_global_rng_alone(project):
    gens = ClassGenerators.from_file(project / "models/train_generation/generators.pt", device="cpu")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    image = gens.sample("bump", 7)
    assert torch.equal(torch.get_rng_state(), before)
    assert np.array_equal(image, gens.sample("bump", 7)) and not np.array_equal(image, gens.sample("bump", 8))


def test_finetuning_stopped_and_resumed_equals_one_run(project, tmp_path, caplog):
    pre = project / "models" / "pretrain"
    kw = dict(
        generator_checkpoint=pre / "generator.pt",
        discriminator_checkpoint=pre / "discriminator.pt",
        classes=CLASSES,
        normal_ids=["demo/train_normal_0"],
    )
    s = GenerationSettings(**{**TINY, "sample_every": 0})
    datasets = _datasets(project / "data" / "processed")
    resume = tmp_path / "resume"  # outside the outputs, as the stage keeps it
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "bump.csv").write_bytes(b"step,loss_g\n9,0.5\n")  # the previous run's curve
    stopped = train_generation(s, datasets, tmp_path / "a", **kw, max_steps=1, resume_dir=resume)
    assert stopped["finished"] is False and not (tmp_path / "a" / "generators.pt").exists()
    assert (tmp_path / "a" / "bump.csv").read_bytes() == b"step,loss_g\n9,0.5\n"  # a kill leaves it intact
    assert sorted(p.name for p in resume.iterdir()) == ["bump.pt", "dust.pt"]
    shutil.rmtree(tmp_path / "a")  # DVC deletes a stage's outputs before a rerun
    with caplog.at_level("INFO"):
        train_generation(s, datasets, tmp_path / "a", **kw, resume_dir=resume)
    assert caplog.text.count("resuming from") == 2
    for name in NAMES:  # each step logged once across the restart
        assert pd.read_csv(tmp_path / "a" / f"{name}.csv")["step"].tolist() == list(range(1, s.steps + 1))
    train_generation(s, datasets, tmp_path / "b", **kw)
    a, b = (torch.load(tmp_path / d / "generators.pt", weights_only=True)["state"] for d in ("a", "b"))
    for name in NAMES:
        assert all(torch.equal(a[name][k], b[name][k]) for k in a[name]), name
    start = torch.load(pre / "generator.pt", weights_only=True)["G_ema"]
    assert not all(torch.equal(a["bump"][k], start[k]) for k in start)  # it did learn
    assert not all(torch.equal(a["bump"][k], a["dust"][k]) for k in start)  # one generator per class


def _augment(project: Path, seed: int = 0, out: str = "data/augmented") -> tuple[Path, pd.DataFrame]:
    from pipeline import augment

    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["augment"].update(seed=seed, out=out)
    other = project / f"params-{seed}-{Path(out).name}.yaml"
    other.write_text(yaml.safe_dump(raw, sort_keys=False))
    with contextlib.chdir(project):
        augment.run(load_params(other), "generation")
    folder = project / out / "generation"
    return folder, pd.read_parquet(folder / "manifest.parquet")


def test_sampling_gives_the_target_counts_labels_and_provenance_within_the_train_pool(project):
    folder, m = _augment(project)
    assert m.groupby("label").size().to_dict() == {"bump": 5, "dust": 5}  # augment.targets: count 5
    assert all(m.groupby("label")["rank"].apply(lambda r: sorted(r) == list(range(5))))
    assert (m["method"] == "generation").all() and (m["transform"] == "[]").all() and (m["labels"] == m["label"]).all()
    ds = ProcessedDataset.load(project / "data" / "processed")
    check_provenance(m, train_pool(ds), folder / "manifest.parquet", ds.index)
    sources = {s for col in ("normal_source", "mask_source") for v in m[col] for s in v.split("|")}
    assert sources <= set(train_pool(ds)["id"]) and len(sources) == COUNTS[("train", "normal")] + 4 + 3
    for row in m.itertuples():
        image, labels = np.asarray(Image.open(folder / row.image)), np.asarray(Image.open(folder / row.labelmap))
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
        assert labels.shape == (32, 32) and not labels.any()  # no placed mask: location unknown
    info = json.loads((folder / "augment.json").read_text())
    assert info["options"] == {"device": "cpu"} and info["images"] == 10


def test_same_seed_same_images_other_seed_other_images(project):
    def pixels(folder, m):
        return [(folder / r).read_bytes() for r in m.sort_values("id")["image"]]

    a = pixels(*_augment(project, 0, "data/aug-a"))
    assert a == pixels(*_augment(project, 0, "data/aug-b"))
    assert len(set(a)) == len(a)  # every image its own latent
    other = pixels(*_augment(project, 1, "data/aug-c"))
    assert not set(a) & set(other)


def test_provenance_outside_the_train_pool_is_refused(project, tmp_path):
    ds = ProcessedDataset.load(project / "data" / "processed")
    state = torch.load(project / "models/train_generation/generators.pt", weights_only=True)
    test_bump = "demo/test_bump_0"
    for key, bad, message in [
        ("sources", {**state["sources"], "bump": [*state["sources"]["bump"], test_bump]}, "mask_source .* is in split 'test'"),
        ("normal_ids", [*state["normal_ids"], "demo/val_normal_0"], "normal_source .* is in split 'val'"),
        ("normal_ids", [*state["normal_ids"], "demo/train_bump_0"], "normal_source .* is not a normal image"),
        ("normal_ids", [], "no normal_source"),
    ]:  # fmt: skip
        path = tmp_path / "bad.pt"
        torch.save({**state, key: bad}, path)
        method = create_method("generation", checkpoint=str(path), device="cpu")
        m = generate_augmented(ds, method, {"bump": 1, "dust": 1}, tmp_path / "out", train_pool(ds), seed=0)
        with pytest.raises(DataError, match=message):
            check_provenance(m, train_pool(ds), "manifest.parquet", ds.index)


def test_generators_for_other_classes_or_missing_are_one_line_errors(project, tmp_path):
    ckpt = project / "models/train_generation/generators.pt"
    method = create_method("generation", checkpoint=str(ckpt), device="cpu")
    with pytest.raises(DataError, match=r"fine-tuned for classes \['bump', 'dust'\].*\['bump', 'scratch'\]") as e:
        method.prepare(["bump", "scratch"])
    assert "\n" not in str(e.value) and str(ckpt) in str(e.value)
    with pytest.raises(DataError, match="not found; run `dvc repro train_generation`"):
        create_method("generation", checkpoint=str(tmp_path / "nope.pt")).prepare(NAMES)
    state = torch.load(ckpt, weights_only=True)
    torch.save({**state, "state": {"bump": state["state"]["bump"]}}, tmp_path / "no-dust.pt")
    ds = ProcessedDataset.load(project / "data" / "processed")
    lonely = create_method("generation", checkpoint=str(tmp_path / "no-dust.pt"), device="cpu")
    with pytest.raises(DataError, match="no generator for class 'dust'"):
        generate_augmented(ds, lonely, {"bump": 1, "dust": 1}, tmp_path / "out", train_pool(ds))
    torch.save({**state, "format": "x"}, tmp_path / "foreign.pt")
    with pytest.raises(DataError, match="not a train_generation generators file"):
        create_method("generation", checkpoint=str(tmp_path / "foreign.pt")).prepare(NAMES)


def test_generation_trains_a_classifier_when_listed(project):
    from pipeline import classify

    _augment(project)
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["classify"] = {
        "methods": ["none", "generation"],
        "seeds": [0],
        "train": {"resolution": 32, "batch_size": 4, "epochs": 1, "input": "processed", "pretrained": False},
        "save_model": False,
    }
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    with contextlib.chdir(project):
        assert classify.main(["--method", "generation", "--seed", "0", "--params", str(path)]) == 0
    run = json.loads((project / "reports/classify/generation-s0/metrics.json").read_text())
    assert run["doses"]["all"]["synthetic_per_class"] == {"normal": 0, "bump": 5, "dust": 5}


def test_dvc_yaml_has_train_generation_and_its_augment_stage_outside_the_default_grid():
    from pipeline.tools.dvcgraph import load_graph

    g = load_graph(ROOT)
    stage = g.stages["augment@generation"]
    assert ROOT / "models/train_generation/generators.pt" in stage.deps and "train_generation" in stage.upstream
    assert "pretrain" in g.stages["train_generation"].upstream
    assert not [name for name in g.order if name.startswith("classify@generation")]  # demo grid unchanged
    params = load_params(ROOT / "params.yaml")
    assert "generation" not in params.classify.methods and "generation" not in params.evaluate.methods


def test_report_grid_shows_generated_images_beside_the_paired_methods(project, monkeypatch):
    from pipeline import augment, report
    from syndgan.report.document import Document

    _augment(project)
    with contextlib.chdir(project):
        params = load_params(project / "params.yaml")
        augment.run(params, "copy_paste")
        grids = []
        monkeypatch.setattr(report, "image_grid", lambda grid, columns, title: grids.append((columns, grid)) or b"")
        doc = Document("t")
        report.section_grids(params, doc, report.Figures(project / "figures"))
    columns, grid = grids[0]
    cp, gen = columns.index("Copy-paste"), columns.index("Generation only (fine-tuned GAN)")
    assert grid and all(row[0] is not None and row[cp] is not None and row[gen] is not None for row in grid)
    assert any("Generation-only methods sample whole images" in str(b) for b in doc.blocks)
