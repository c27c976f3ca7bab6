"""Which method a user should take, with honest error bars: the winner on val, its test gap over ``none``, and
whether that gap is larger than the noise.

Three noises are weighed, because each alone has fooled this project before: the classifier seeds' spread, the
draws of the k kept images where they were measured, and the test set's own (a paired bootstrap over the test
images: with 16 test defects one image moves macro-F1 by several points). A gap is "beyond the noise" only when
its 95 % bootstrap interval excludes 0 and it is larger than the seeds' (and draws') spread of both methods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

BASELINE = "none"


def macro_f1_samples(actual: np.ndarray, predicted: np.ndarray, k: int, weights: np.ndarray) -> np.ndarray:
    """Macro-F1 (as ``classification_metrics``: classes absent from the sample left out, precision 0 when a class
    is never predicted) of each resample: ``weights`` (B, n) counts how often each test image is drawn."""
    onehot = np.zeros((len(actual), k * k))
    onehot[np.arange(len(actual)), actual * k + predicted] = 1.0
    cm = (weights @ onehot).reshape(-1, k, k)  # (B, true, predicted)
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support, called = cm.sum(2), cm.sum(1)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    f1 = np.where(support > 0, f1, np.nan)
    return np.nanmean(f1, axis=1)


def bootstrap_gap(
    runs_a: Sequence[tuple[Sequence[int], Sequence[int]]],
    runs_b: Sequence[tuple[Sequence[int], Sequence[int]]],
    k: int,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Interval of (mean over seeds of A's macro-F1) - (B's) when the test images are drawn again with
    replacement; both methods see the same draws (paired). ``runs_*``: (actual, predicted) class ids per seed,
    over the same test images in the same order."""
    n = len(runs_a[0][0])
    if any(len(a) != n for a, _ in [*runs_a, *runs_b]):
        raise ValueError("every run must predict the same test images")
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(float)

    def mean_f1(runs) -> np.ndarray:
        return np.mean([macro_f1_samples(np.asarray(a), np.asarray(p), k, weights) for a, p in runs], axis=0)

    gap = mean_f1(runs_a) - mean_f1(runs_b)
    tail = (1 - level) / 2
    return float(np.quantile(gap, tail)), float(np.quantile(gap, 1 - tail))


def verdict(
    chosen: Mapping[str, dict],
    predictions: Mapping[str, Sequence[tuple[Sequence[int], Sequence[int]]]],
    k: int,
    draw_std: Mapping[str, float] | None = None,
) -> dict:
    """``chosen[method]``: the summary of its dose chosen on val (``aggregate_runs``: mean/std of ``val_macro_f1``
    and ``macro_f1``, with ``dose``); ``predictions[method]``: its seeds' (actual, predicted) test ids at that
    dose; ``draw_std``: the spread over draws of the kept images, where measured. Values in [0, 1]."""
    if BASELINE not in chosen or len(chosen) < 2:
        return {"winner": None, "reason": f"needs {BASELINE!r} and at least one other method"}
    others = {m: s for m, s in chosen.items() if m != BASELINE}
    winner = max(others, key=lambda m: others[m]["val_macro_f1"]["mean"] or -1.0)
    w, b = chosen[winner], chosen[BASELINE]
    gap = w["macro_f1"]["mean"] - b["macro_f1"]["mean"]
    lo, hi = bootstrap_gap(predictions[winner], predictions[BASELINE], k)
    spreads = {"seeds": max(w["macro_f1"]["std"] or 0.0, b["macro_f1"]["std"] or 0.0)}
    if draw_std:
        spreads["draws"] = max(draw_std.get(winner, 0.0), draw_std.get(BASELINE, 0.0))
    beyond = (lo > 0 or hi < 0) and abs(gap) > max(spreads.values())
    return {
        "winner": winner,
        "dose": w.get("dose"),
        "val_gap": w["val_macro_f1"]["mean"] - b["val_macro_f1"]["mean"],
        "test_gap": gap,
        "bootstrap_95": [lo, hi],
        "test_images": len(predictions[winner][0][0]),
        "spread": spreads,
        "beyond_noise": bool(beyond),
    }


def sentence(v: dict) -> str:
    """The verdict in one sentence a user acts on (macro-F1 points)."""
    if v.get("winner") is None:
        return f"No verdict: {v.get('reason', '')}."
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    lo, hi = v["bootstrap_95"]
    spread = ", ".join(f"{name} spread {100 * s:.1f}" for name, s in v["spread"].items())
    noise = f"95 % bootstrap interval over the {v['test_images']} test images {pts(lo)} to {pts(hi)}; {spread}"
    dose = f" at dose {v['dose']}" if v.get("dose") not in (None, "0") else ""
    if v["beyond_noise"]:
        verb = "use" if v["test_gap"] > 0 else "avoid"
        return f"{verb.capitalize()} {v['winner']}{dose}: {pts(v['test_gap'])} test macro-F1 over {BASELINE}, beyond the noise ({noise})."
    return (
        f"No method is distinguishable from {BASELINE} here: the best on val, {v['winner']}{dose}, is "
        f"{pts(v['test_gap'])} test macro-F1 over {BASELINE}, within the noise ({noise})."
    )
