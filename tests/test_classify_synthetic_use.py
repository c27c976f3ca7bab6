"""Issue 12 lever 4: how a classifier run uses its synthetic images (loss weight, share of every batch,
synthetic-only pretraining)."""

import pytest
import torch
from test_augment import make_tiny_processed

import syndgan.classify.train as train_mod
from pipeline.config import parse_params
from pipeline.experiments.scarcity import ROOT, merged_params
from syndgan.classify import (
    ImageSet,
    aggregate_runs,
    class_weights,
    classification_metrics,
    load_real,
    soft_cross_entropy,
    train_classifier,
)
from syndgan.classify.aggregate import select_dose_on_val
from syndgan.classify.batches import draw_mass, mixed_batch_indices, phase_class_weights, phased_batch_indices
from syndgan.classify.scarcity import records_from_runs
from syndgan.classify.settings import ClassifierSettings, SyntheticUse, dose_key, dose_of_key
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
    base = dict(resolution=32, batch_size=4, steps=4, epochs=None, eval_every=2, eval_from_epoch=0, device="cpu", pretrained=False)  # fmt: skip
    return ClassifierSettings(**{**base, **kw})


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


@pytest.mark.parametrize("use", [SyntheticUse(share=0.5), SyntheticUse(pretrain=0.5)], ids=["share", "pretrain"])
def test_a_two_stream_rule_needs_synthetic_images_and_a_shuffled_pool(tiny, use):
    real, train = tiny
    rule = "share" if use.share is not None else "pretrain"
    with pytest.raises(ConfigError, match=f"{rule} needs real and synthetic training images, got .* 0 synthetic"):
        train_classifier(real.train, real.val, real.class_names, _settings(), 0, 2, use=use)
    with pytest.raises(ConfigError, match=f"{rule} needs a shuffled pool"):
        train_classifier(train, real.val, real.class_names, _settings(imbalance="balanced_sampler"), 0, 2, use=use)


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
    assert records_from_runs("demo", 10, docs, {"syndgan": "30_w0.3"})[0]["val_macro_f1"] == 80.0
    assert records_from_runs("demo", 10, docs, {"syndgan": "30"})[0]["dose"] == 30


def test_the_pretrain_rule_validates_and_names_its_runs():
    use = SyntheticUse(pretrain=0.5)
    assert not use.is_default and use.label() == "p0.5" and dose_key(30, use) == "30_p0.5"
    assert dose_of_key("30_p0.5") == "30" and dose_of_key("all_p0.3") == "all"
    for bad, message in (
        ({"pretrain": 0}, "pretrain: must be in"),
        ({"pretrain": 1.0}, "pretrain: must be in"),
        ({"pretrain": 0.5, "share": 0.25}, "pretrain: .*set share: null"),
        ({"pretrain": 0.5, "weight": 0.3}, "pretrain: .*set weight: 1.0"),
    ):
        with pytest.raises(ConfigError, match=message):
            SyntheticUse(**bad)
    assert [use.pretrain_steps(b) for b in (10, 3, 2, 1)] == [5, 2, 1, 0]  # some of each phase when possible
    assert SyntheticUse().pretrain_steps(10) == 0
    # params: a rule list with pretrain, its keys through the aggregate (val picks it, ties: smaller dose) and
    # the scarcity records
    raw = {
        "ingest": {"classes": {"bump": [255, 0, 0]}},
        "classify": {"doses": [30], "synthetic": [{}, {"pretrain": 0.5}]},
    }
    assert [k for k, _, _ in parse_params(raw).classify.runs_of(True)] == ["30", "30_p0.5"]
    val = {"30": 0.7, "30_p0.5": 0.8, "all_p0.5": 0.8}
    assert select_dose_on_val({d: {"val_macro_f1": {"mean": v}} for d, v in val.items()}) == "30_p0.5"
    m = classification_metrics([0, 1], [0, 1], ["normal", "bump"]) | {"val_macro_f1": 0.8}
    docs = [{"method": "syndgan", "seed": 0, "doses": {"30_p0.5": m}}]
    assert records_from_runs("demo", 10, docs, {"syndgan": "30_p0.5"})[0]["dose"] == "30_p0.5"


def test_the_pretrain_screening_variant_keeps_the_default_rule_first():
    params = parse_params(merged_params([ROOT / "data/configs/screen/synthetic_pretrain.yaml"]))
    assert [u.label() for u in params.classify.synthetic] == ["", "p0.5", "p0.3"]


def test_pretraining_draws_synthetic_images_first_then_real_ones_each_walking_its_epochs():
    real, syn = torch.arange(0, 10), torch.arange(10, 16)
    batches = [phased_batch_indices(step, 4, real, syn, pretrain_steps=3, seed=1) for step in range(8)]
    assert all(bool((b >= 10).all()) for b in batches[:3]) and all(bool((b < 10).all()) for b in batches[3:])
    first, then = torch.cat(batches[:3]).tolist(), torch.cat(batches[3:]).tolist()
    assert sorted(first[:6]) == list(range(10, 16)) and sorted(first[6:12]) == list(range(10, 16))
    assert sorted(then[:10]) == list(range(10)) and sorted(then[10:20]) == list(range(10))  # from its first epoch
    for step in (2, 5):  # a pure function of (seed, step): a resumed run draws what the uninterrupted one did
        assert torch.equal(batches[step], phased_batch_indices(step, 4, real, syn, 3, seed=1))
    assert not torch.equal(batches[0], phased_batch_indices(0, 4, real, syn, 3, seed=2))


def test_each_pretraining_phase_balances_the_classes_of_its_own_pool():
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2, 1, 1, 1, 2])
    synthetic = torch.tensor([False] * 9 + [True] * 4)  # as augment makes them: defects only
    pre, real = phase_class_weights(y, synthetic, 3, SyntheticUse(pretrain=0.5))
    for w, pool in ((pre, synthetic), (real, ~synthetic)):
        per_class = [float(w[c] * ((y == c) & pool).sum()) for c in range(3)]
        present = [m for m in per_class if m > 0]
        assert len(present) == len({int(c) for c in y[pool]}) and present == pytest.approx([present[0]] * len(present))
    assert pre[0] == 1  # normal is absent from the synthetic phase
    one = phase_class_weights(y, synthetic, 3, SyntheticUse(weight=0.5))
    assert torch.equal(one[0], one[1]) and torch.equal(
        one[1], class_weights(y, 3, draw_mass(synthetic, SyntheticUse(weight=0.5)))
    )
    with pytest.raises(ValueError):
        draw_mass(synthetic, SyntheticUse(pretrain=0.5))


def test_a_pretraining_run_switches_to_real_images_and_resumes_in_its_phase(tiny, tmp_path, monkeypatch):
    """Budget 6 at pretrain 0.5: steps 0-2 synthetic (defects only, as augment makes them), 3-5 real; killed in
    step 2 and resumed from the checkpoint at step 2, the run crosses into the real phase exactly as one that
    never stopped."""
    real, _ = tiny

    def synthetic(of: torch.Tensor, flip: int) -> ImageSet:
        ids = [f"syn{flip}-{i}" for i, d in zip(real.train.ids, of.tolist(), strict=True) if d]
        return ImageSet(ids, real.train.x[of].flip(flip), real.train.y[of], torch.ones(int(of.sum()), dtype=torch.bool))

    # every defect class, the first twice: the synthetic phase's class weights differ from the real one's
    syn = synthetic(real.train.y > 0, -1) + synthetic(real.train.y == 1, -2)
    train, names, s, use = real.train + syn, real.class_names, _settings(steps=6), SyntheticUse(pretrain=0.5)
    labels: list[list[int]] = []

    def record(x, y, g):
        labels.append(y.argmax(1).tolist())
        return x, y

    weights = []

    def weighted_ce(logits, target, weight, sample_weight=None):
        weights.append(weight)
        return soft_cross_entropy(logits, target, weight, sample_weight)

    monkeypatch.setattr("syndgan.classify.train.soft_cross_entropy", weighted_ce)
    a = train_classifier(train, real.val, names, s, seed=1, budget=6, mix=record, use=use)
    monkeypatch.undo()
    phases = phase_class_weights(train.y, train.synthetic, len(names), use)
    assert not torch.equal(*phases)
    assert [torch.equal(w, phases[i >= 3]) for i, w in enumerate(weights)] == [True] * 6  # each phase's own
    assert a.steps_run == 6 and [h["step"] for h in a.history] == [2, 4, 6]  # val in both phases
    assert all(0 not in b for b in labels[:3])  # no normal image: the synthetic phase
    assert 0 in sum(labels[3:], [])  # 8 of the 32 real train images are normal: the 12 seeded real draws hold some

    class Kill(Exception):
        pass

    def dies_in_step_2(x, y, g):
        if len(labels) == 8:  # a's 6 steps + 2
            raise Kill
        return record(x, y, g)

    ckpt = tmp_path / "pretrain.pt"
    with pytest.raises(Kill):
        train_classifier(train, real.val, names, s, seed=1, budget=6, mix=dies_in_step_2, use=use, resume_path=ckpt)
    b = train_classifier(train, real.val, names, s, seed=1, budget=6, mix=record, use=use, resume_path=ckpt)
    assert b.resumed_from == 2 and b.history == a.history and _same(a, b)
    assert labels[8:] == labels[2:6]  # the resumed steps drew the batches of a's steps 2-5
    default = train_classifier(train, real.val, names, s, seed=1, budget=6)
    assert not _same(a, default)


def test_early_stopping_waits_for_the_real_phase(tiny, monkeypatch):
    real, train = tiny
    # Constant val scores: every validation after the first is "no better", so only the gate delays the stop.
    monkeypatch.setattr(train_mod, "evaluate", lambda *a, **k: {"macro_f1": 0.5, "loss": 1.0})
    s = _settings(steps=6, eval_every=1, patience=1)
    r = train_classifier(train, real.val, real.class_names, s, seed=0, budget=6, use=SyntheticUse(pretrain=0.5))
    # Steps 1-3 are the synthetic phase; step 4 is the first validation after a real step, and patience 1 stops
    # there (without the gate: at step 2; with `>=` in it: at step 3).
    assert r.steps_run == 4 and [h["step"] for h in r.history] == [1, 2, 3, 4]
