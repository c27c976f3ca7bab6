"""The augment stage's quality gate (augment.gate, syndgan/quality) on tiny processed data (32 px): off, it changes
nothing; on, it keeps exactly the target count per class, the highest-scored ones, the same set for the same seed,
and its classifier scorer learns from the train pool only; the report shows the rejection rate."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from synth_helpers import write_pretrained
from test_augment import _write_params, make_tiny_processed

from pipeline.augment import main as augment_main
from pipeline.config import load_params
from syndgan.augment import check_provenance, create_method, generate_augmented
from syndgan.data.processed import ProcessedDataset, read_png, train_pool
from syndgan.errors import DataError
from syndgan.quality.gate import candidate_counts, check_training_ids, defect_window, select_best
from syndgan.quality.scorers import ClassifierScorer, DiscriminatorScorer, train_classifier_scorer, training_ids
from syndgan.quality.settings import GateClassifierSettings

TINY_CLASSIFIER = {"steps": 2, "resolution": 32, "batch_size": 4, "device": "cpu"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate")
    processed = make_tiny_processed(root / "full", classes=("bump", "dust"), resolution=32)
    k_shot = make_tiny_processed(root / "kshot", classes=("bump", "dust"), resolution=32, k_shot=1)
    write_pretrained(root / "pretrain")  # a 32 px projected discriminator.pt with random heads
    return {"processed": processed, "k_shot": k_shot, "pretrain": root / "pretrain"}


def run_stage(tmp_path, processed, method="copy_paste", pretrain=None, **gate):
    sections = {"augment": {"gate": gate}} if gate else {}
    if pretrain is not None:
        sections["pretrain"] = {"out": str(pretrain)}
    tmp_path.mkdir(exist_ok=True)
    params = _write_params(tmp_path, processed, **sections)
    assert augment_main(["--method", method, "--params", str(params)]) == 0
    return tmp_path / "augmented" / method


def files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_candidate_counts_and_selection_rule():
    assert candidate_counts({"a": 10, "b": 3, "c": 0}, 1.1) == {"a": 11, "b": 4, "c": 0}
    labels = np.array(["a", "a", "a", "b", "b"])
    scores = np.array([0.2, 0.9, 0.9, -1.0, 5.0])
    # per class the best target count; a tie goes to the earlier candidate
    assert select_best(labels, scores, {"a": 1, "b": 1}).tolist() == [False, True, False, False, True]
    assert select_best(labels, scores, {"a": 2, "b": 0}).tolist() == [False, True, True, False, False]


def test_patch_window_of_an_unpaired_image_is_the_centre_or_the_whole_image():
    """Unpaired methods (generation) leave all-0 label maps: a patch-mode discriminator judges the centre window,
    or the whole image when it is smaller than the patch."""
    labels = np.zeros((64, 48), np.uint8)
    assert defect_window(labels, 32) == (8, 16, 32)
    assert defect_window(labels, 128) == (0, 8, 48)
    labels[40:44, 2:6] = 1  # a defect: the window around it, as before
    x0, y0, size = defect_window(labels, 32)
    assert size == 32 and x0 <= 2 and x0 + size >= 6 and y0 <= 40 and y0 + size >= 44


def test_gate_off_leaves_the_output_exactly_as_without_it(data, tmp_path):
    default = run_stage(tmp_path / "a", data["processed"])
    off = run_stage(tmp_path / "b", data["processed"], scorer="none", oversample=3.0)
    assert files(default) == files(off)  # byte for byte: oversample means nothing while the gate is off
    assert not any(k.startswith(("gate", "rejected", "scorer")) for k in files(default))
    assert "gate" not in json.loads((default / "augment.json").read_text())
    # ... and it is what generate_augmented makes on its own
    ds = ProcessedDataset.load(data["processed"])
    plain = generate_augmented(ds, create_method("copy_paste"), {"bump": 2, "dust": 2}, tmp_path / "c", train_pool(ds))
    pd.testing.assert_frame_equal(pd.read_parquet(default / "manifest.parquet"), plain)
    assert all((default / p).read_bytes() == (tmp_path / "c" / p).read_bytes() for p in plain["image"])


def test_discriminator_gate_keeps_the_best_target_count_per_class(data, tmp_path):
    ds = ProcessedDataset.load(data["processed"])
    out = run_stage(
        tmp_path / "run", data["processed"], pretrain=data["pretrain"], scorer="discriminator", oversample=2.5
    )
    manifest = pd.read_parquet(out / "manifest.parquet")
    table = pd.read_parquet(out / "gate.parquet")
    assert manifest.groupby("label").size().to_dict() == {"bump": 2, "dust": 2}
    assert table.groupby("label").size().to_dict() == {"bump": 5, "dust": 5}  # ceil(2.5 x 2)
    for _, df in table.groupby("label"):
        kept, rejected = df[df["kept"]], df[~df["kept"]]
        assert len(kept) == 2 and kept["score"].min() >= rejected["score"].max()
        assert sorted(kept["rank"]) == [0, 1] and set(rejected["rank"]) == {-1}
        assert list(kept.sort_values("rank")["candidate"]) == sorted(kept["candidate"])  # ranks in candidate order
    assert set(manifest["id"]) == set(table[table["kept"]]["id"])
    assert all((out / p).is_file() for p in table["image"]) and all(
        p.startswith("rejected/") for p in table[~table["kept"]]["image"]
    )
    # the scores are the discriminator's mean logits on the saved images
    scorer = DiscriminatorScorer.from_file(data["pretrain"] / "discriminator.pt")
    again = scorer.batch_scores([read_png(out / p, ds.mode) for p in table["image"]], list(table["label"]))
    np.testing.assert_allclose(again, table["score"], rtol=1e-5, atol=1e-6)
    # candidate i is the ungated run's image i: the gate only adds candidates and chooses
    plain = run_stage(tmp_path / "plain", data["processed"])
    for row in table[table["candidate"] < 2].itertuples():
        assert (out / row.image).read_bytes() == (plain / f"images/{row.image.rsplit('/', 1)[-1]}").read_bytes()
    summary = json.loads((out / "gate.json").read_text())
    assert summary["scorer"] == "discriminator" and summary["total"] == {
        "generated": 10, "kept": 4, "rejected": 6, "rejection_rate": 0.6,
    }  # fmt: skip
    assert summary["classes"]["bump"]["threshold"] == pytest.approx(
        table[(table.label == "bump") & table.kept]["score"].min()
    )
    info = json.loads((out / "augment.json").read_text())
    assert info["images"] == 4 and info["gate"]["candidates"] == {"bump": 5, "dust": 5}
    # same seed, same kept set
    same = run_stage(
        tmp_path / "same", data["processed"], pretrain=data["pretrain"], scorer="discriminator", oversample=2.5
    )
    assert files(same) == files(out)


def test_classifier_scorer_learns_from_the_train_pool_only(data, tmp_path):
    ds = ProcessedDataset.load(data["k_shot"])
    pool = train_pool(ds)
    out = run_stage(tmp_path / "run", data["k_shot"], scorer="classifier", oversample=2.0, classifier=TINY_CLASSIFIER)
    # the scorer's training images: exactly the k-shot train pool, no val or test image
    ids = training_ids(out / "scorer.pt")
    assert sorted(ids) == sorted(pool["id"]) and len(ids) < len(ds.split("train"))
    assert set(ds.index.set_index("id").loc[ids, "split"]) == {"train"}
    held_out = ds.index[ds.index["split"] != "train"]
    with pytest.raises(DataError, match="in split 'val'|in split 'test'"):
        check_training_ids([*ids, held_out["id"].iloc[0]], pool, "scorer.pt", ds.index)
    # and no synthetic image, kept or rejected, derives from a val/test image
    table = pd.read_parquet(out / "gate.parquet")
    check_provenance(table, pool, "gate.parquet", ds.index)
    sources = set(table["normal_source"]) | {s for v in table["mask_source"] for s in v.split("|")}
    assert sources <= set(pool["id"]) and not sources & set(held_out["id"])
    # score = P(intended class) from that classifier, on the saved image
    scorer = ClassifierScorer.from_file(out / "scorer.pt")
    row = table.iloc[0]
    assert row["score"] == pytest.approx(scorer.score(read_png(out / row["image"], ds.mode), row["label"]), abs=1e-6)
    assert table.groupby("label")["kept"].sum().to_dict() == {"bump": 2, "dust": 2}
    # the scorer's training and so the kept set are repeatable: a fresh run is the same, byte for byte
    fresh = run_stage(
        tmp_path / "fresh", data["k_shot"], scorer="classifier", oversample=2.0, classifier=TINY_CLASSIFIER
    )
    assert files(fresh) == files(out)


def test_the_same_gate_applies_to_the_syndgan_method(data, tmp_path):
    from synth_helpers import write_synthesizer

    ckpt = write_synthesizer(tmp_path / "synthesizer.pt")
    sections = {
        "augment": {"gate": {"scorer": "discriminator", "oversample": 1.5}, "syndgan": {"checkpoint": str(ckpt)}}
    }
    params = _write_params(tmp_path, data["processed"], pretrain={"out": str(data["pretrain"])}, **sections)
    assert augment_main(["--method", "syndgan", "--params", str(params)]) == 0
    table = pd.read_parquet(tmp_path / "augmented" / "syndgan" / "gate.parquet")
    assert table.groupby("label")["kept"].agg(["size", "sum"]).values.tolist() == [[3, 2], [3, 2]]
    assert set(table["method"]) == {"syndgan"}


def test_a_cached_scorer_is_reused_only_for_the_same_training(data, tmp_path):
    from syndgan.classify.train import create_classifier
    from syndgan.quality.scorers import scorer_fingerprint

    ds = ProcessedDataset.load(data["k_shot"])
    pool, names = train_pool(ds).sort_values("id"), ["normal", *ds.class_names]
    s = GateClassifierSettings(**TINY_CLASSIFIER)
    # a cached scorer with all-zero weights: a reuse returns them, a retraining does not
    model = create_classifier("tf_efficientnet_lite0", len(names), pretrained=False)
    fingerprint = scorer_fingerprint(s, names, 0, list(pool["id"]), [ds.root / p for p in pool["image"]])
    state = {"model": {k: torch.zeros_like(v) for k, v in model.state_dict().items()}, "arch": "tf_efficientnet_lite0"}
    state |= {"classes": names, "resolution": 32, "train_ids": list(pool["id"]), "fingerprint": fingerprint}
    torch.save(state, tmp_path / "cached.pt")

    def zero(scorer) -> bool:
        return all(not v.any() for v in scorer.model.state_dict().values() if v.is_floating_point())

    assert zero(train_classifier_scorer(ds.root, pool, names, s, 0, tmp_path / "a.pt", cached=tmp_path / "cached.pt"))
    fewer = GateClassifierSettings(**(TINY_CLASSIFIER | {"steps": 1}))  # other settings: trained anew
    assert not zero(train_classifier_scorer(ds.root, pool, names, fewer, 0, tmp_path / "b.pt", tmp_path / "cached.pt"))


def test_report_shows_the_rejection_rate_and_the_rejected(data, tmp_path):
    from pipeline import report
    from syndgan.report.document import Document, render_markdown

    run_stage(tmp_path, data["processed"], pretrain=data["pretrain"], scorer="discriminator", oversample=2.0)
    params = load_params(tmp_path / "params.yaml")
    params.report.grid_rows = 1  # one kept and one rejected image per class: a small figure

    def section() -> tuple[str, dict]:
        doc, figs = Document("t"), report.Figures(tmp_path / "figures")
        try:
            report.section_gate(params, doc, figs)
        except report.Missing as e:
            doc.paragraph(str(e))
        return render_markdown(doc, tmp_path), figs.files

    md, files = section()
    assert "| Copy-paste | discriminator | all | 8 | 4 | 50.0 |" in md
    assert "| Copy-paste | discriminator | bump | 4 | 2 | 50.0 |" in md
    assert "gate_copy_paste.png" in md and len(files["gate_copy_paste.png"]) > 1000
    # a run without a gate says so
    shutil.rmtree(tmp_path / "augmented")
    run_stage(tmp_path, data["processed"])
    md, files = section()
    assert "no augment output was gated" in md and not files
