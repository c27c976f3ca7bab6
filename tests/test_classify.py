import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.metrics import f1_score
from test_augment import make_tiny_processed

from pipeline.config import parse_params
from syndgan.classify import (
    ClassifierSettings,
    ImageSet,
    aggregate_runs,
    class_weights,
    classification_metrics,
    create_classifier,
    load_real,
    markdown_table,
    select_dose,
    soft_cross_entropy,
    train_classifier,
)
from syndgan.data.processed import ProcessedDataset
from syndgan.errors import ConfigError


def test_metrics_by_hand():
    names = ["normal", "bump", "dust"]
    y = [0, 0, 0, 0, 1, 1, 2, 2]
    p = [0, 0, 0, 1, 1, 2, 0, 2]
    m = classification_metrics(y, p, names)
    assert m["total_accuracy"] == pytest.approx(5 / 8)
    assert m["per_class_accuracy"] == pytest.approx({"normal": 0.75, "bump": 0.5, "dust": 0.5})
    assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert m["defect_recall"] == pytest.approx(3 / 4)  # bump->dust still counts as "a defect"
    assert m["normal_false_alarm"] == pytest.approx(1 / 4)
    assert m["confusion"] == [[3, 1, 0], [0, 1, 1], [1, 0, 1]]
    absent = classification_metrics([0, 0, 1], [0, 1, 1], names)
    assert absent["per_class_accuracy"]["dust"] is None and absent["support"]["dust"] == 0


def test_weighted_soft_cross_entropy_matches_torch():
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, 0, 0, 0, 1, 2])
    w = class_weights(y, 3)
    assert torch.allclose(w * torch.tensor([4.0, 1.0, 1.0]), torch.full((3,), 2.0))  # equal total weight
    ref = F.cross_entropy(logits, y, weight=w)
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 3).float(), w), ref)
    assert torch.allclose(soft_cross_entropy(logits, F.one_hot(y, 3).float(), None), F.cross_entropy(logits, y))


def test_equal_compute_budget():
    s = ClassifierSettings(steps=None, epochs=10, batch_size=32)
    assert s.step_budget(952) == 300  # epochs count the *real* train set: the same for every method
    assert s.eval_steps(952, 300) == [180, 210, 240, 270, 300]  # once per epoch from epoch 6
    assert ClassifierSettings(steps=7, epochs=None).step_budget(10_000) == 7
    with pytest.raises(ConfigError):
        ClassifierSettings(steps=5, epochs=2.0)
    with pytest.raises(ConfigError, match="pretrained: false"):
        create_classifier("resnet18", 3, pretrained=True)


def test_dose_takes_the_first_ranks_per_class():
    m = pd.DataFrame({"label": ["bump"] * 3 + ["dust"] * 2, "rank": [2, 0, 1, 1, 0], "id": list("abcde")})
    assert sorted(select_dose(m, 2, ["bump", "dust"], "m")["id"]) == ["b", "c", "d", "e"]
    assert len(select_dose(m, "all", ["bump", "dust"], "m")) == 5
    with pytest.raises(ConfigError, match="dose 3 needs 3 synthetic 'dust' images, m has 2"):
        select_dose(m, 3, ["bump", "dust"], "m")


def test_aggregate_mean_std_and_table():
    names = ["normal", "bump"]
    runs = []
    for seed, acc in enumerate([0.8, 0.9, 1.0]):
        m = classification_metrics([0, 1], [0, 1] if acc == 1.0 else [0, 0], names)
        m["total_accuracy"], m["val_macro_f1"] = acc, 0.5
        runs.append({"method": "none", "seed": seed, "dose": "0", **m})
    agg = aggregate_runs(runs)
    s = agg["none"]["0"]
    assert s["total_accuracy"]["mean"] == pytest.approx(0.9)
    assert s["total_accuracy"]["std"] == pytest.approx(0.1)
    assert s["seeds"] == 3 and s["per_class_accuracy"]["bump"]["mean"] == pytest.approx(1 / 3)
    table = markdown_table(agg)
    assert "| none | 0 | 3 | 90.0 ± 10.0 |" in table


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"classify": {"doses": ["half"]}}, "classify.doses[0]"),
        ({"classify": {"doses": [0]}}, "classify.doses[0]"),
        ({"classify": {"seeds": [1, 1]}}, "classify.seeds"),
        ({"classify": {"methods": []}}, "classify.methods"),
        ({"rasterize": {"k_shot": 0}}, "rasterize.k_shot"),
        ({"classify": {"train": {"steps": 10}}}, "classify.train.steps"),
        ({"classify": {"train": {"warmup": 1.5}}}, "classify.train.warmup"),
        ({"scarcity": {"ks": [0]}}, "scarcity.ks[0]"),
        ({"classify": {"train": {"resolution": 16}}}, "classify.train.resolution"),
        ({"classify": {"train": {"imbalance": "oversample"}}}, "classify.train.imbalance"),
        ({"augment": {"targets": {"per_class": {"scratch": 5}}}}, "augment.targets.per_class.scratch"),
        ({"augment": {"targets": {"mode": "double"}}}, "augment.targets.mode"),
        ({"augment": {"placement": {"scale": [1.2, 0.8]}}}, "augment.placement.scale"),
        ({"augment": {"cutmix": {"prob": 2}}}, "augment.cutmix.prob"),
    ],
)
def test_bad_params_name_the_key(raw, key):
    from pipeline.methods import validate  # a method's section: checked against the registry by its readers

    raw = {"ingest": {"classes": {"bump": [255, 0, 0]}}, **raw}
    with pytest.raises(ConfigError) as e:
        validate(parse_params(raw))
    assert key in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_processed(tmp_path_factory.mktemp("cls"), resolution=32)


def _settings(**kw):
    base = dict(resolution=32, batch_size=4, steps=4, epochs=None, eval_every=2, eval_from_epoch=0, device="cpu")
    base.update(kw)
    return ClassifierSettings(**base)


def test_training_is_repeatable_and_resumes_exactly(tiny_dir, tmp_path):
    torch.set_num_threads(1)
    real = load_real(ProcessedDataset.load(tiny_dir), 32)
    names = real.class_names
    s = _settings()
    a = train_classifier(real.train, real.val, names, s, seed=3, budget=4)
    b = train_classifier(real.train, real.val, names, s, seed=3, budget=4)
    assert a.history == b.history and len(a.history) == 2 and a.steps_run == 4
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k

    class Kill(Exception):
        pass

    calls = {"n": 0}

    def dies_at_step_3(x, y, g):
        calls["n"] += 1
        if calls["n"] == 3:
            raise Kill
        return x, y

    ckpt = tmp_path / "resume.pt"
    with pytest.raises(Kill):
        train_classifier(real.train, real.val, names, s, seed=3, budget=4, mix=dies_at_step_3, resume_path=ckpt)
    assert ckpt.is_file()
    c = train_classifier(real.train, real.val, names, s, seed=3, budget=4, mix=lambda x, y, g: (x, y), resume_path=ckpt)
    assert c.resumed_from == 2 and c.history == a.history
    for (k, va), vc in zip(a.model.state_dict().items(), c.model.state_dict().values(), strict=True):
        assert torch.equal(va, vc), k


def test_resume_before_the_first_validation_and_after_an_early_stop(tiny_dir, tmp_path):
    """Checkpoints come every validation interval, also before the first validation (the running train loss
    travels with them), and a stopped or finished run resumed from its last checkpoint returns the same result."""
    torch.set_num_threads(1)
    real = load_real(ProcessedDataset.load(tiny_dir), 32)
    names = real.class_names
    s = _settings(steps=6, eval_from_epoch=0.5)  # 8 steps an epoch: validations at 4 and 6, checkpoints at 2, 4, 6
    assert s.eval_steps(len(real.train), 6) == [4, 6]
    a = train_classifier(real.train, real.val, names, s, seed=2, budget=6)

    class Kill(Exception):
        pass

    calls = []

    def dies_at_step_3(x, y, g):
        calls.append(1)
        if len(calls) == 3:
            raise Kill
        return x, y

    ckpt = tmp_path / "resume.pt"
    with pytest.raises(Kill):
        train_classifier(real.train, real.val, names, s, seed=2, budget=6, mix=dies_at_step_3, resume_path=ckpt)
    b = train_classifier(real.train, real.val, names, s, seed=2, budget=6, resume_path=ckpt)
    assert b.resumed_from == 2 and b.history == a.history and [h["step"] for h in a.history] == [4, 6]
    again = train_classifier(real.train, real.val, names, s, seed=2, budget=6, resume_path=ckpt)  # finished
    assert again.resumed_from == 6 and again.steps_run == 6 and again.history == a.history
    for (k, va), vb in zip(a.model.state_dict().items(), again.model.state_dict().values(), strict=True):
        assert torch.equal(va, vb), k
    other_seed = train_classifier(real.train, real.val, names, s, seed=3, budget=6, resume_path=ckpt)
    assert other_seed.resumed_from == 0  # a checkpoint of another run is not continued

    stops = _settings(steps=20, eval_every=1, patience=1)
    first = train_classifier(real.train, real.val, names, stops, seed=0, budget=20, resume_path=tmp_path / "s.pt")
    assert first.steps_run < 20
    resumed = train_classifier(real.train, real.val, names, stops, seed=0, budget=20, resume_path=tmp_path / "s.pt")
    assert (resumed.resumed_from, resumed.steps_run, resumed.best_step) == (first.steps_run,) * 2 + (first.best_step,)
    assert resumed.history == first.history


def test_early_stopping_and_balanced_sampler(tiny_dir):
    real = load_real(ProcessedDataset.load(tiny_dir), 32)
    r = train_classifier(
        real.train, real.val, real.class_names, _settings(steps=20, eval_every=1, patience=1), seed=0, budget=20
    )
    assert r.steps_run < 20 and r.best_step <= r.steps_run
    r = train_classifier(
        real.train, real.val, real.class_names, _settings(steps=2, imbalance="balanced_sampler"), seed=0, budget=2
    )
    assert r.steps_run == 2


def test_grayscale_images_become_three_channels(tmp_path):
    from syndgan.classify.data import load_images

    Image = pytest.importorskip("PIL.Image")
    Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), "L").save(tmp_path / "g.png")
    x = load_images(tmp_path, ["g.png"], 8)
    assert x.shape == (1, 3, 8, 8) and torch.equal(x[0, 0], x[0, 2])
    assert isinstance(ImageSet(["a"], x, torch.zeros(1, dtype=torch.long), torch.zeros(1, dtype=torch.bool)), ImageSet)


def test_end_to_end_augment_classify_aggregate(tiny_dir, tmp_path, monkeypatch, capsys):
    """augment (copy_paste, cutmix, none) -> classify (2 steps each) -> aggregate, through the stage modules."""
    from pipeline import augment, classify, classify_aggregate

    monkeypatch.chdir(tmp_path)
    classes = {c["name"]: c["color"] for c in json.loads((tiny_dir / "dataset.json").read_text())["classes"]}
    params = {
        "rasterize": {"out": str(tiny_dir)},
        "ingest": {"classes": classes, "out": str(tiny_dir.parent / "interim")},
        "augment": {"targets": {"mode": "count", "count": 3}, "out": "augmented"},
        "classify": {
            "methods": ["none", "cutmix", "copy_paste"],
            "seeds": [0],
            "doses": [2, "all"],
            "train": {"resolution": 32, "batch_size": 4, "epochs": 1},
            "save_model": False,
            "out": "reports/classify",
            "plots": "plots/classify",
            "metrics": "metrics/classify.json",
            "table": "metrics/classify_table",
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for method in ("none", "cutmix", "copy_paste"):
        assert augment.main(["--method", method]) == 0
        assert classify.main(["--method", method, "--seed", "0"]) == 0
    run = json.loads((tmp_path / "reports/classify/copy_paste-s0/metrics.json").read_text())
    assert set(run["doses"]) == {"2", "all"}
    assert run["doses"]["2"]["synthetic_per_class"] == {"normal": 0, "bump": 2, "chipping": 2, "dust": 2}
    assert run["doses"]["all"]["synthetic_per_class"]["dust"] == 3
    budget = run["doses"]["2"]["steps_budget"]
    assert (
        budget
        == run["doses"]["all"]["steps_budget"]
        == -(-len(pd.read_parquet(tiny_dir / "index.parquet").query("split == 'train'")) // 4)
    )
    assert 0 <= run["doses"]["all"]["val_macro_f1"] <= 1
    none = json.loads((tmp_path / "reports/classify/none-s0/metrics.json").read_text())
    assert list(none["doses"]) == ["0"] and none["doses"]["0"]["synthetic_per_class"]["bump"] == 0
    plot = pd.read_csv(tmp_path / "plots/classify/copy_paste-s0/dose-all.csv")
    assert list(plot.columns) == ["id", "actual", "predicted"] and len(plot) == none["doses"]["0"]["n"]
    assert classify_aggregate.main([]) == 0
    agg = json.loads((tmp_path / "metrics/classify.json").read_text())
    assert set(agg) == {"none", "cutmix", "copy_paste"} and set(agg["copy_paste"]) == {"2", "all"}
    assert 0 <= agg["none"]["0"]["total_accuracy"]["mean"] <= 1
    assert "copy_paste" in (tmp_path / "metrics/classify_table.md").read_text()
    v = json.loads((tmp_path / "metrics/classify_verdict.json").read_text())  # the winner on val, against noise
    assert v["winner"] in ("cutmix", "copy_paste") and v["test_images"] == none["doses"]["0"]["n"]
    assert v["bootstrap_95"][0] <= v["test_gap"] <= v["bootstrap_95"][1] and v["sentence"].endswith(").")
    assert v["sentence"] in (tmp_path / "metrics/classify_table.md").read_text()
    # a synthetic image derived from a test image is refused before any training
    man_path = tmp_path / "augmented/copy_paste/manifest.parquet"
    man = pd.read_parquet(man_path)
    index = pd.read_parquet(tiny_dir / "index.parquet")
    man.loc[0, "normal_source"] = index[(index["split"] == "test") & (index["label"] == "normal")]["id"].iloc[0]
    man.to_parquet(man_path, index=False)
    capsys.readouterr()
    assert classify.main(["--method", "copy_paste", "--seed", "0"]) == 1
    err = capsys.readouterr().err
    assert "normal_source" in err and "is in split 'test'" in err
    # augment output made for another train pool than the processed data's is refused
    aug_info = tmp_path / "augmented/none/augment.json"
    aug_info.write_text(json.dumps({**json.loads(aug_info.read_text()), "k_shot": 1}))
    assert classify.main(["--method", "none", "--seed", "0"]) == 1
    assert "made for k_shot=1 (seed 0), but the processed data's train pool has k_shot=None" in capsys.readouterr().err


def test_the_studio_scores_with_the_classifier_classify_saves(tiny_dir, tmp_path, monkeypatch):
    """With the project's classify.doses and save_model, the `none` run's model.pt is the studio's scorer."""
    from pipeline import augment, classify
    from pipeline.config import load_params
    from pipeline.tools.studio import project_scorer
    from syndgan.quality.scorers import ClassifierScorer

    project = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())["classify"]
    monkeypatch.chdir(tmp_path)
    classes = {c["name"]: c["color"] for c in json.loads((tiny_dir / "dataset.json").read_text())["classes"]}
    params = {
        "rasterize": {"out": str(tiny_dir)},
        "ingest": {"classes": classes, "out": str(tiny_dir.parent / "interim")},
        "augment": {"out": "augmented"},
        "classify": {
            "methods": ["none"],
            "seeds": [0],
            "doses": project["doses"],
            "save_model": project["save_model"],
            "train": {"resolution": 32, "batch_size": 4, "steps": 2, "epochs": None, "pretrained": False},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert augment.main(["--method", "none"]) == 0
    assert classify.main(["--method", "none", "--seed", "0"]) == 0
    scorer = project_scorer(load_params("params.yaml"))
    saved = list((tmp_path / "reports/classify").rglob("model.pt"))
    assert isinstance(scorer, ClassifierScorer) and [Path(scorer.source)] == saved
    run = json.loads((tmp_path / "reports/classify/none-s0/metrics.json").read_text())
    assert scorer.classes == run["classes"] and list(run["doses"]) == ["0"]


def test_onecycle_schedule_matches_torch():
    from syndgan.classify.train import schedule

    s = ClassifierSettings(lr=1e-3, warmup=0.1)
    model = torch.nn.Linear(2, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=50, pct_start=0.1)
    for step in range(50):
        lr, beta1 = schedule(step, 50, s)
        assert lr == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9), step
        assert beta1 == pytest.approx(opt.param_groups[0]["betas"][0], rel=1e-9), step
        opt.step()
        ref.step() if step < 49 else None
    assert schedule(0, 50, s)[0] == pytest.approx(1e-3 / 25) and schedule(4, 50, s)[0] == pytest.approx(1e-3)
    cos = ClassifierSettings(schedule="cosine", warmup=0.1)
    assert schedule(4, 50, cos)[0] == pytest.approx(1e-3) and schedule(49, 50, cos)[0] < 2e-6


def test_batches_walk_through_shuffled_epochs():
    from syndgan.classify.batches import batch_indices

    n, bs = 10, 4
    stream = torch.cat([batch_indices(step, bs, n, seed=1) for step in range(5)]).tolist()  # 2 epochs
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert stream[:10] != stream[10:20]  # a new shuffle each epoch
    assert torch.equal(batch_indices(3, bs, n, 1), batch_indices(3, bs, n, 1))  # a pure function: resumable
    assert not torch.equal(batch_indices(0, bs, n, 1), batch_indices(0, bs, n, 2))


def test_random_flips_only_flip():
    from syndgan.classify.train import random_flips

    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4).repeat(50, 1, 1, 1)
    y = random_flips(x, torch.Generator().manual_seed(0))
    seen = set()
    for a, b in zip(x, y, strict=True):
        kind = [
            k
            for k, f in {"id": b, "h": b.flip(-1), "v": b.flip(-2), "hv": b.flip(-1).flip(-2)}.items()
            if torch.equal(a, f)
        ]
        assert kind, "not a flip"
        seen.add(kind[0])
    assert seen == {"id", "h", "v", "hv"}


def test_native_input_reads_source_files_once_resampled(tiny_dir):
    """input: native squashes the source image straight to the classifier size (no processed intermediate)."""
    from PIL import Image as PILImage

    man = pd.read_parquet(tiny_dir.parent / "interim" / "manifest.parquet")
    native = dict(zip(man["id"], man["path"], strict=True))
    ds = ProcessedDataset.load(tiny_dir)
    real = load_real(ds, 48, native=native)
    i = 0
    src = PILImage.open(native[real.train.ids[i]]).convert("RGB").resize((48, 48), PILImage.Resampling.BILINEAR)
    assert torch.equal(real.train.x[i], torch.from_numpy(np.asarray(src)).permute(2, 0, 1))
    processed = load_real(ds, 48)
    assert not torch.equal(real.train.x, processed.train.x)  # the 32 px processed copy lost detail
    with pytest.raises(Exception, match="no source file in the ingest manifest"):
        load_real(ds, 48, native={k: v for k, v in list(native.items())[1:]})


def test_dose_is_chosen_on_val_not_test():
    names = ["normal", "bump"]
    runs = []
    for dose, val_f1, test_acc in (("30", 0.7, 0.99), ("all", 0.8, 0.5)):
        for seed in (0, 1):
            m = classification_metrics([0, 1], [0, 1], names)
            m.update(total_accuracy=test_acc, val_macro_f1=val_f1 + 0.01 * seed)
            runs.append({"method": "copy_paste", "seed": seed, "dose": dose, **m})
    agg = aggregate_runs(runs)
    assert agg["copy_paste"]["all"]["selected"] and not agg["copy_paste"]["30"]["selected"]
    assert "all (chosen on val)" in markdown_table(agg)


def test_scarcity_records_and_summary(tmp_path):
    from syndgan.classify.scarcity import figure, records_from_runs, summarize

    names = ["normal", "bump"]
    runs = []
    for seed, pred in enumerate(([0, 0, 1, 1], [0, 1, 1, 1])):
        m = classification_metrics([0, 0, 1, 1], pred, names) | {"val_macro_f1": 0.5 + 0.1 * seed}
        runs.append({"method": "copy_paste", "seed": seed, "doses": {"30": m, "all": m}})
    recs = records_from_runs("demo", 10, runs, {"copy_paste": "30"})
    assert recs[0] == {
        "dataset": "demo", "k": 10, "method": "copy_paste", "dose": 30, "seed": 0,
        "total": 100.0, "macro_f1": 100.0, "defect_recall": 100.0, "normal_recall": 100.0, "val_macro_f1": 50.0,
    }  # fmt: skip
    assert recs[1]["normal_recall"] == 50.0
    s = summarize(recs + records_from_runs("demo", None, runs, {"copy_paste": "all"}))
    assert list(s) == ["k=10", "k=all"]
    assert s["k=10"]["copy_paste"]["normal_recall"] == {"mean": 75.0, "std": pytest.approx(35.36, abs=0.01)}
    assert s["k=10"]["copy_paste"]["val_macro_f1"]["mean"] == 55.0  # what doses and variants are chosen on
    figure(s, tmp_path / "curve.png", "demo")
    assert (tmp_path / "curve.png").stat().st_size > 1000
