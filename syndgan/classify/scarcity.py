"""The scarcity curve: classification quality against the number k of real defect images per class.

A record is one classifier run at the dose its method chose on val:
``{"dataset", "k", "method", "dose", "seed", "total", "macro_f1", "defect_recall", "normal_recall",
"val_macro_f1"}`` (k an integer or "all"; rates in %; the rates are test's, ``val_macro_f1`` what the dose and
any variant are chosen on). Records are summarised per (k, method) as mean +- std over seeds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

RATES = ("total", "macro_f1", "defect_recall", "normal_recall")
SUMMARISED = (*RATES, "val_macro_f1")  # records published before val was kept lack it: None in the summary


def k_label(k: int | str | None) -> int | str:
    return "all" if k in (None, "all") else int(k)


def records_from_runs(dataset: str, k: int | str | None, runs: Iterable[dict], selected: dict[str, str]) -> list[dict]:
    """``runs``: classify stage outputs (``<method>-s<seed>/metrics.json``); ``selected``: method -> dose chosen
    on val (``classify_aggregate``). Keeps each run's chosen dose only."""
    out = []
    for run in runs:
        dose = selected[run["method"]]
        m = run["doses"][dose]

        def pct(v):
            return None if v is None else round(100 * v, 4)

        out.append(
            {
                "dataset": dataset,
                "k": k_label(k),
                "method": run["method"],
                "dose": int(dose) if dose.isdigit() else dose,  # "all", or with a synthetic-use rule: "30_w0.3"
                "seed": int(run["seed"]),
                "total": pct(m["total_accuracy"]),
                "macro_f1": pct(m["macro_f1"]),
                "defect_recall": pct(m["defect_recall"]),
                "normal_recall": pct(m["per_class_accuracy"]["normal"]),
                "val_macro_f1": pct(m["val_macro_f1"]),
            }
        )
    return out


def k_order(k: int | str) -> float:
    return float("inf") if k == "all" else float(k)


def summarize(records: Sequence[dict]) -> dict:
    """{"k=<k>": {method: {rate: {"mean", "std"}, "seeds", "dose"}}}: numbers only, for DVC metrics."""
    out: dict[str, dict] = {}
    for k in sorted({r["k"] for r in records}, key=k_order):
        for method in dict.fromkeys(r["method"] for r in records):
            rs = [r for r in records if r["k"] == k and r["method"] == method]
            if not rs:
                continue
            s: dict = {}
            for rate in SUMMARISED:
                v = np.array([r[rate] for r in rs if r.get(rate) is not None], float)
                s[rate] = {
                    "mean": round(float(v.mean()), 2) if len(v) else None,
                    "std": round(float(v.std(ddof=1)), 2) if len(v) > 1 else 0.0,
                }
            s["seeds"] = len(rs)
            s["dose"] = rs[0]["dose"]
            out.setdefault(f"k={k}", {})[method] = s
    return out


def verdict_lines(verdicts: dict) -> list[str]:
    """What a user with k defect images per class should do, one line per k (``syndgan.classify.verdict``)."""
    from syndgan.classify.verdict import sentence

    return [f"- k = {k.removeprefix('k=')}: {sentence(v)}" for k, v in verdicts.items()]


def markdown(summary: dict, dataset: str) -> str:
    head = ["k", "method", "dose (val)", "seeds", "macro-F1", "total", "defect recall", "normal recall"]
    lines = [
        f"### Scarcity curve: {dataset} (test %, mean ± std over seeds)",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for k, methods in summary.items():
        for method, s in methods.items():
            cells = [k.removeprefix("k="), method, str(s["dose"]), str(s["seeds"])]
            for rate in ("macro_f1", "total", "defect_recall", "normal_recall"):
                m = s[rate]
                cells.append("-" if m["mean"] is None else f"{m['mean']:.1f} ± {m['std']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_rows(summary: dict) -> list[dict]:
    """One row per (k, method): what DVC plots draws (x: position of k, y: mean macro-F1)."""
    rows = []
    for i, (k, methods) in enumerate(summary.items()):
        for method, s in methods.items():
            rows.append(
                {
                    "k_index": i,
                    "k": k.removeprefix("k="),
                    "method": method,
                    "macro_f1": s["macro_f1"]["mean"],
                    "macro_f1_std": s["macro_f1"]["std"],
                }
            )
    return rows


def figure(summary: dict, path, dataset: str) -> None:
    """Macro-F1 against k, one line per method with a +-1 std band (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = plot_rows(summary)
    ks = list(dict.fromkeys(r["k"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method and r["macro_f1"] is not None]
        x = np.array([r["k_index"] for r in rs])
        y = np.array([r["macro_f1"] for r in rs])
        sd = np.array([r["macro_f1_std"] for r in rs])
        ax.plot(x, y, marker="o", label=method)
        ax.fill_between(x, y - sd, y + sd, alpha=0.2)
    ax.set_xticks(range(len(ks)), ks)
    ax.set_xlabel("real defect images per class in train (k)")
    ax.set_ylabel("test macro-F1 (%)")
    ax.set_title(f"Scarcity curve: {dataset}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
