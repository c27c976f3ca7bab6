"""The verdict: a paired bootstrap over test images, and when a gap counts as beyond the noise."""

import numpy as np
import pytest

from syndgan.classify.metrics import classification_metrics
from syndgan.classify.verdict import bootstrap_gap, macro_f1_samples, sentence, verdict


def _runs(actual, correct_rate, seeds, k, rng):
    out = []
    for _ in range(seeds):
        pred = [a if rng.random() < correct_rate else int(rng.integers(k)) for a in actual]
        out.append((list(actual), pred))
    return out


def test_resampled_macro_f1_matches_the_metric_on_the_original_sample():
    rng = np.random.default_rng(0)
    actual = rng.integers(0, 4, 60)
    pred = np.where(rng.random(60) < 0.6, actual, rng.integers(0, 4, 60))
    pred[pred == 3] = 2  # class 3 never predicted: precision 0, as the metric has it
    got = macro_f1_samples(actual, pred, 4, np.ones((1, 60)))[0]
    assert got == pytest.approx(classification_metrics(actual, pred, ["a", "b", "c", "d"])["macro_f1"])
    twice = np.concatenate([np.ones(30) * 2, np.zeros(30)])[None]  # the first half drawn twice, the rest never
    half = classification_metrics(actual[:30], pred[:30], ["a", "b", "c", "d"])["macro_f1"]
    assert macro_f1_samples(actual, pred, 4, twice)[0] == pytest.approx(half)


def test_a_real_gap_on_many_images_is_beyond_the_noise_and_a_small_one_on_few_is_not():
    rng = np.random.default_rng(1)
    k = 4
    many = rng.integers(0, k, 400)
    good, weak = _runs(many, 0.9, 3, k, rng), _runs(many, 0.5, 3, k, rng)
    lo, hi = bootstrap_gap(good, weak, k)
    assert 0.2 < lo < hi < 0.6
    few = rng.integers(0, k, 16)
    a, b = _runs(few, 0.7, 3, k, rng), _runs(few, 0.65, 3, k, rng)
    lo, hi = bootstrap_gap(a, b, k)
    assert lo < 0 < hi  # 16 test images cannot tell 70 % from 65 %

    def summary(runs):
        f1 = [classification_metrics(x, y, list("abcd"))["macro_f1"] for x, y in runs]
        return {"macro_f1": {"mean": np.mean(f1), "std": np.std(f1, ddof=1)}, "val_macro_f1": {"mean": np.mean(f1)}}

    v = verdict(
        {"none": summary(weak), "copy_paste": {**summary(good), "dose": "100"}}, {"none": weak, "copy_paste": good}, k
    )
    assert v["winner"] == "copy_paste" and v["beyond_noise"]
    assert sentence(v).startswith("Use copy_paste at dose 100: +")
    v = verdict({"none": summary(b), "syndgan": summary(a)}, {"none": b, "syndgan": a}, k)
    assert not v["beyond_noise"] and sentence(v).startswith("No method is distinguishable from none here")
    # a measured spread over draws of the kept images larger than the gap also keeps it within the noise
    v = verdict({"none": summary(weak), "copy_paste": summary(good)}, {"none": weak, "copy_paste": good}, k,
                draw_std={"none": 0.9})  # fmt: skip
    assert not v["beyond_noise"] and "draws spread 90.0" in sentence(v)
