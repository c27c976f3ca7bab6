"""Mean +- std over seeds, per (method, dose): the table that compares augmentation methods."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from syndgan.classify.settings import dose_of_key

SCALARS = ("total_accuracy", "macro_f1", "defect_recall", "normal_false_alarm", "val_macro_f1")


def _stats(values: Sequence[float | None]) -> dict:
    v = np.array([x for x in values if x is not None], float)
    if not len(v):
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}


def aggregate_runs(runs: Sequence[dict]) -> dict:
    """``runs``: [{"method", "seed", "dose", **classification_metrics}] -> {method: {dose: summary}}.

    A summary holds mean/std/n of every scalar metric and of each class's accuracy, and the number of
    seeds (numbers only: DVC shows this as metrics).
    """
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in runs:
        groups.setdefault((r["method"], str(r["dose"])), []).append(r)
    out: dict[str, dict] = {}
    for (method, dose), rs in groups.items():
        classes = rs[0]["classes"]
        summary = {name: _stats([r[name] for r in rs]) for name in SCALARS}
        summary["per_class_accuracy"] = {c: _stats([r["per_class_accuracy"][c] for r in rs]) for c in classes}
        summary["seeds"] = len({int(r["seed"]) for r in rs})
        out.setdefault(method, {})[dose] = summary
    for doses in out.values():
        best = select_dose_on_val(doses)
        for dose, summary in doses.items():
            summary["selected"] = dose == best
    return out


def select_dose_on_val(doses: dict[str, dict]) -> str:
    """The dose (with its synthetic-use rule: ``30_w0.3``) whose seeds have the best mean val macro-F1 (ties:
    the smaller dose, then the order run; "all" counts as the largest). Test numbers play no part: they are
    read once, for the dose chosen here."""

    def size(key: str) -> float:
        dose = dose_of_key(key)
        return float("inf") if dose == "all" else float(dose)

    def val(dose: str) -> float:
        v = doses[dose]["val_macro_f1"]["mean"]
        return -1.0 if v is None else v

    return max(sorted(doses, key=size), key=val)


def _pm(s: dict) -> str:
    if s["mean"] is None:
        return "-"
    return f"{100 * s['mean']:.1f} ± {100 * s['std']:.1f}"


def markdown_table(agg: dict, title: str = "") -> str:
    """Rows: method x dose; columns: total accuracy, macro-F1, defect recall, false alarms, per-class accuracy (%)."""
    classes: list[str] = []
    for doses in agg.values():
        for s in doses.values():
            classes = list(s["per_class_accuracy"])
            break
    head = [
        "method",
        "synthetic/class",
        "seeds",
        "total acc",
        "macro-F1",
        "defect recall",
        "false alarm",
        "val macro-F1",
    ]
    head += [f"acc {c}" for c in classes]
    lines = [f"### {title}", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, doses in agg.items():
        for dose, s in doses.items():
            chosen = " (chosen on val)" if s["selected"] and len(doses) > 1 else ""
            cells = [method, dose + chosen, str(s["seeds"])] + [_pm(s[k]) for k in SCALARS]
            cells += [_pm(s["per_class_accuracy"][c]) for c in classes]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def table_rows(agg: dict) -> list[dict]:
    """Flat rows (one per method x dose) for a CSV."""
    rows = []
    for method, doses in agg.items():
        for dose, s in doses.items():
            row = {"method": method, "dose": dose, "selected": s["selected"], "seeds": s["seeds"]}
            for k in SCALARS:
                row[f"{k}_mean"], row[f"{k}_std"] = s[k]["mean"], s[k]["std"]
            for c, st in s["per_class_accuracy"].items():
                row[f"acc_{c}_mean"], row[f"acc_{c}_std"] = st["mean"], st["std"]
            rows.append(row)
    return rows
