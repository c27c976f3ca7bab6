import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
import yaml
from sklearn.metrics import f1_score
from test_augment import make_tiny_processed

from pipeline.config import parse_params
from syndgan.augment import ProcessedDataset
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
    assert s.step_budget(952) == 298  # epochs count the *real* train set: the same for every method
    assert ClassifierSettings(steps=7).step_budget(10_000) == 7
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
        m["total_accuracy"] = acc
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
        ({"classify": {"k_shot": 0}}, "classify.k_shot"),
        ({"classify": {"train": {"epochs": 10}}}, "classify.train.steps"),
        ({"classify": {"train": {"resolution": 16}}}, "classify.train.resolution"),
        ({"classify": {"train": {"imbalance": "oversample"}}}, "classify.train.imbalance"),
        ({"augment": {"targets": {"per_class": {"scratch": 5}}}}, "augment.targets.per_class.scratch"),
        ({"augment": {"targets": {"mode": "double"}}}, "augment.targets.mode"),
        ({"augment": {"placement": {"scale": [1.2, 0.8]}}}, "augment.placement.scale"),
        ({"augment": {"cutmix": {"prob": 2}}}, "augment.cutmix.prob"),
    ],
)
def test_bad_params_name_the_key(raw, key):
    raw = {"ingest": {"classes": {"bump": [255, 0, 0]}}, **raw}
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert key in str(e.value) and "\n" not in str(e.value)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return make_tiny_processed(tmp_path_factory.mktemp("cls"), resolution=32)


def _settings(**kw):
    base = dict(resolution=32, batch_size=4, steps=4, eval_every=2, patience=None, warmup_steps=1, device="cpu")
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
        "ingest": {"classes": classes},
        "rasterize": {"out": str(tiny_dir)},
        "augment": {"targets": {"mode": "count", "count": 3}, "out": "augmented"},
        "classify": {
            "methods": ["none", "cutmix", "copy_paste"],
            "seeds": [0],
            "doses": [2, "all"],
            "train": {"resolution": 32, "batch_size": 4, "steps": 2, "eval_every": 1, "warmup_steps": 1},
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
    assert run["doses"]["2"]["steps_budget"] == run["doses"]["all"]["steps_budget"] == 2
    none = json.loads((tmp_path / "reports/classify/none-s0/metrics.json").read_text())
    assert list(none["doses"]) == ["0"] and none["doses"]["0"]["synthetic_per_class"]["bump"] == 0
    plot = pd.read_csv(tmp_path / "plots/classify/copy_paste-s0/dose-all.csv")
    assert list(plot.columns) == ["id", "actual", "predicted"] and len(plot) == none["doses"]["0"]["n"]
    assert classify_aggregate.main([]) == 0
    agg = json.loads((tmp_path / "metrics/classify.json").read_text())
    assert set(agg) == {"none", "cutmix", "copy_paste"} and set(agg["copy_paste"]) == {"2", "all"}
    assert 0 <= agg["none"]["0"]["total_accuracy"]["mean"] <= 1
    assert "copy_paste" in (tmp_path / "metrics/classify_table.md").read_text()
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
    # augment output made for another k-shot setting is refused
    params["classify"]["k_shot"] = 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert classify.main(["--method", "none", "--seed", "0"]) == 1
    assert "made for k_shot=None" in capsys.readouterr().err
