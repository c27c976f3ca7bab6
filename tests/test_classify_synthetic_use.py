"""Issue 12 lever 4: how a classifier run uses its synthetic images (loss weight, share of every batch)."""

import pytest
import torch
from test_augment import make_tiny_processed

from pipeline.config import parse_params
from syndgan.classify import (
    ImageSet,
    aggregate_runs,
    class_weights,
    classification_metrics,
    load_real,
    soft_cross_entropy,
    train_classifier,
)
from syndgan.classify.scarcity import records_from_runs
from syndgan.classify.settings import ClassifierSettings, SyntheticUse, dose_key
from syndgan.classify.train import draw_mass, mixed_batch_indices
from syndgan.data.processed import ProcessedDataset
from syndgan.errors import ConfigError


def test_rules_validate_and_name_their_runs():
    assert SyntheticUse().is_default and dose_key(30, SyntheticUse()) == "30"
    assert dose_key("all", SyntheticUse(weight=0.3)) == "all_w0.3"
    assert dose_key(30, SyntheticUse(weight=0.5, share=0.25)) == "30_w0.5s0.25"
    for bad in ({"weight": 0}, {"share": 1.0}, {"share": 0}):
        with pytest.raises(ConfigError):
            SyntheticUse(**bad)


def test_params_list_every_dose_with_every_rule():
    raw = {"ingest": {"classes": {"bump": [255, 0, 0]}}}
    c = parse_params({**raw, "classify": {"doses": [30, "all"], "synthetic": [{}, {"weight": 0.3}]}}).classify
    assert [k for k, _, _ in c.runs_of(True)] == ["30", "30_w0.3", "all", "all_w0.3"]
    assert [k for k, _, _ in c.runs_of(False)] == ["0"]
    with pytest.raises(ConfigError, match="classify.synthetic"):
        parse_params({**raw, "classify": {"synthetic": [{"weight": 0.5}, {"weight": 0.5}]}})


def test_a_fixed_share_of_every_batch_is_synthetic_and_each_stream_walks_its_epochs():
    real, syn = torch.arange(0, 10), torch.arange(10, 14)
    batches = [mixed_batch_indices(step, 8, real, syn, 0.25, seed=1) for step in range(5)]
    assert all(int((b >= 10).sum()) == 2 for b in batches)
    # the real stream: 6 per batch, every real image once in each pool-epoch of 10
    stream = torch.cat([b[b < 10] for b in batches]).tolist()
    assert sorted(stream[:10]) == list(range(10)) and sorted(stream[10:20]) == list(range(10))
    assert torch.equal(batches[3], mixed_batch_indices(3, 8, real, syn, 0.25, seed=1))  # a function of the step


def test_sample_weights_scale_terms_not_the_normaliser():
    torch.manual_seed(0)
    logits, y = torch.randn(6, 3), torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 0, 1, 2]), 3).float()
    w = torch.tensor([1.0, 2.0, 0.5])
    plain = soft_cross_entropy(logits, y, w)
    assert torch.equal(soft_cross_entropy(logits, y, w, torch.ones(6)), plain)
    half = soft_cross_entropy(logits, y, w, torch.tensor([1, 1, 1, 0.5, 0.5, 0.5]))
    first = soft_cross_entropy(logits[:3], y[:3], w) * (y[:3] * w).sum()
    second = soft_cross_entropy(logits[3:], y[3:], w) * (y[3:] * w).sum()
    assert half == pytest.approx(((first + 0.5 * second) / (y * w).sum()).item())


def test_class_weights_balance_the_loss_mass_of_each_class():
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    synthetic = torch.tensor([False] * 4 + [False, False, True, True, True, True])
    for use in (SyntheticUse(weight=0.25), SyntheticUse(share=0.5), SyntheticUse(weight=0.5, share=0.2)):
        mass = draw_mass(synthetic, use)
        w = class_weights(y, 2, mass)
        per_class = [float((mass[y == c] * w[c]).sum()) for c in range(2)]
        assert per_class[0] == pytest.approx(per_class[1])
    assert torch.equal(class_weights(y, 2, draw_mass(synthetic, SyntheticUse())), class_weights(y, 2))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    real = load_real(ProcessedDataset.load(make_tiny_processed(tmp_path_factory.mktemp("use"), resolution=32)), 32)
    flipped = ImageSet(
        [f"syn{i}" for i in real.train.ids], real.train.x.flip(-1), real.train.y, torch.ones_like(real.train.synthetic)
    )
    return real, real.train + flipped


def _settings(**kw):
    return ClassifierSettings(resolution=32, batch_size=4, steps=4, epochs=None, eval_every=2, eval_from_epoch=0, device="cpu", pretrained=False, **kw)  # fmt: skip


def _same(a, b) -> bool:
    return all(
        torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    )


def test_the_default_rule_trains_exactly_as_before_and_the_others_change_training(tiny, tmp_path):
    real, train = tiny
    names, s = real.class_names, _settings()
    before = train_classifier(train, real.val, names, s, seed=1, budget=4)
    default = train_classifier(train, real.val, names, s, seed=1, budget=4, use=SyntheticUse())
    assert _same(before, default) and before.history == default.history
    for use in (SyntheticUse(weight=0.3), SyntheticUse(share=0.5)):
        other = train_classifier(train, real.val, names, s, seed=1, budget=4, use=use)
        assert not _same(before, other)
        again = train_classifier(train, real.val, names, s, seed=1, budget=4, use=use)
        assert _same(other, again)  # same seed, same result
    # a resume file of one rule is not resumed by another
    ckpt = tmp_path / "r.pt"
    train_classifier(train, real.val, names, s, seed=1, budget=4, use=SyntheticUse(weight=0.3), resume_path=ckpt)
    fresh = train_classifier(train, real.val, names, s, seed=1, budget=4, use=SyntheticUse(share=0.5), resume_path=ckpt)
    assert fresh.resumed_from == 0


def test_a_share_needs_synthetic_images_and_a_shuffled_pool(tiny):
    real, train = tiny
    with pytest.raises(ConfigError, match="share"):
        train_classifier(real.train, real.val, real.class_names, _settings(), 0, 2, use=SyntheticUse(share=0.5))
    with pytest.raises(ConfigError, match="share"):
        s = _settings(imbalance="balanced_sampler")
        train_classifier(train, real.val, real.class_names, s, 0, 2, use=SyntheticUse(share=0.5))


def test_the_rule_is_chosen_on_val_with_the_dose_and_named_in_the_records():
    names = ["normal", "bump"]
    runs = []
    for key, val_f1 in (("30", 0.70), ("30_w0.3", 0.80), ("all", 0.75)):
        for seed in (0, 1):
            m = classification_metrics([0, 1], [0, 1], names)
            m.update(val_macro_f1=val_f1)
            runs.append({"method": "syndgan", "seed": seed, "dose": key, **m})
    agg = aggregate_runs(runs)
    chosen = [d for d, s in agg["syndgan"].items() if s["selected"]]
    assert chosen == ["30_w0.3"]
    docs = [{"method": "syndgan", "seed": 0, "doses": {r["dose"]: r for r in runs if r["seed"] == 0}}]
    assert records_from_runs("demo", 10, docs, {"syndgan": "30_w0.3"})[0]["dose"] == "30_w0.3"
    assert records_from_runs("demo", 10, docs, {"syndgan": "30"})[0]["dose"] == 30
