"""The paper's tables from the stages' JSON outputs: synthesis quality (Table 1), reconstruction (Tables 2
and 5), class counts (Table 3), classification (Table 4). Each builder returns ``(header, rows)`` of strings;
every number is formatted from the input, never typed in. Missing values print as ``n/a``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from syndgan.augment import method_label

ALL = "all"  # the pooled entry of a set: every class's images together
REAL_SET = "real_train"  # the real-vs-real baseline: real train defects against the same real test defects
ABLATION_PREFIX = "syndgan_"  # evaluated set (and augment folder) of a train_synth ablation: syndgan_<ablation>

# Paper Table 5 row names of the train_synth ablations.
ABLATION_LABELS = {
    "no_pretrain": "w/o Pretrained",
    "no_pretrained_decoder": "w/o Pretrained decoder",
    "no_inversion": "w/o In-domain loss",
    "single_scale_d": "w/ Single scale D",
    "aux_classifier_d": "w/ Auxiliary classifier D",
}
REAL_LABEL = "Real (train vs test)"

NA = "n/a"


def set_label(name: str) -> str:
    """Display name of an evaluated set or augmentation method (a method's is its class's ``label``)."""
    if name.startswith(ABLATION_PREFIX):
        ablation = name[len(ABLATION_PREFIX) :]
        return f"SyNDGAN {ABLATION_LABELS.get(ablation, ablation)}"
    return REAL_LABEL if name == REAL_SET else method_label(name)


def ablation_label(name: str) -> str:
    return ABLATION_LABELS.get(name, name)


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return NA
    try:
        return f"{float(value):.{digits}f}"
    except (TypeError, ValueError):
        return str(value)


def fmt_pm(mean: Any, std: Any, digits: int = 2, scale: float = 1.0) -> str:
    """``mean ± std`` (each times ``scale``), ``n/a`` when the mean is missing."""
    if mean is None:
        return NA
    text = fmt(float(mean) * scale, digits)
    return text if std is None else f"{text} ± {fmt(float(std) * scale, digits)}"


def fmt_int(value: Any) -> str:
    return NA if value is None else str(int(value))


# --------------------------------------------------------------------------- Table 1: synthesis quality


def _quality_columns(metric_names: Mapping[str, str]) -> list[tuple[str, Any]]:
    """(header, entry -> cell) for each metric evaluate computed (names as evaluate.json records them)."""
    cols: list[tuple[str, Any]] = []
    if fid := metric_names.get("fid"):
        cols.append((f"{fid} ↓", lambda e, k=fid: fmt(e.get(k), 2)))
    if kid := metric_names.get("kid"):
        cols.append(
            (
                f"{kid} ×10³ ↓ (mean ± std)",
                lambda e, k=kid: fmt_pm(e.get(f"{k}_x1e3_mean"), e.get(f"{k}_x1e3_std"), 2),
            )
        )
        cols.append(("KID subset", lambda e, k=kid: fmt_int(e.get(f"{k}_subset_size"))))
    if ic := metric_names.get("ic"):
        cols.append((f"{ic} ↑", lambda e, k=ic: fmt(e.get(k), 4)))
    return cols


def synthesis_table(evaluation: Mapping[str, Any], per_class: bool = False) -> tuple[list[str], list[list[str]]]:
    """Rows: evaluated sets (the real baseline first); pooled over classes, or one row per set and class."""
    cols = _quality_columns(evaluation.get("metric_names", {}))
    sets = evaluation.get("synthesis", {})
    classes = [*evaluation.get("classes", []), ALL] if per_class else [ALL]
    header = ["set", *(["class"] if per_class else []), "images", "real test", *(h for h, _ in cols), "notes"]
    rows = []
    for name in _ordered(sets, evaluation.get("sets", [])):
        by_class = sets[name]
        for cls in classes:
            e = by_class.get(cls)
            if e is None:
                continue
            rows.append(
                [
                    set_label(name),
                    *([cls] if per_class else []),
                    fmt_int(e.get("images")),
                    fmt_int(e.get("reference_images")),
                    *(cell(e) for _, cell in cols),
                    e.get("notes") or "",
                ]
            )
    return header, rows


# --------------------------------------------------------------------------- Tables 2 and 5: reconstruction


def reconstruction_table(reconstruction: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Rows: the synthesis network and its ablations; columns as Tables 2/5 (normal, defect) plus the
    empty-map defect reconstruction and L1 (whole image, and the painted region of defect images alone)."""
    p = reconstruction.get("perceptual") or "perceptual"
    header = [
        "model",
        f"normal {p} ↓",
        f"defect {p} ↓",
        f"defect, empty map {p} ↓",
        "L1 normal ↓",
        "L1 defect ↓",
        "L1 defect, painted region ↓",
        "images (normal / defect)",
    ]
    rows = []
    models = reconstruction.get("models", {})
    for name in _ordered(models, ["syndgan", *reconstruction.get("order", [])]):
        m = models[name]
        label = "SyNDGAN (ours)" if name == "syndgan" else ablation_label(name)
        q = m.get("perceptual") or p
        rows.append(
            [
                label,
                fmt(m.get(f"recon_{q}_normal"), 4),
                fmt(m.get(f"recon_{q}_defect"), 4),
                fmt(m.get(f"recon_{q}_defect_nomap"), 4),
                fmt(m.get("recon_l1_normal"), 4),
                fmt(m.get("recon_l1_defect"), 4),
                fmt(m.get("recon_l1_defect_region"), 4),
                f"{fmt_int(m.get('recon_images_normal'))} / {fmt_int(m.get('recon_images_defect'))}",
            ]
        )
    return header, rows


# --------------------------------------------------------------------------- Table 3: counts


def counts_table(
    split_counts: Mapping[str, Mapping[str, int]],
    classes: Sequence[str],
    pool_counts: Mapping[str, int],
    synthetic: Mapping[str, Mapping[str, int]],
) -> tuple[list[str], list[list[str]]]:
    """Rows: normal + defect classes. Columns: real images per split, the train images augmentation could
    use (after k-shot), and per image-producing method ``train + synthetic (+synthetic)``."""
    splits = [s for s in ("train", "val", "test") if s in split_counts]
    header = ["class", *(f"{s} (real)" for s in splits), "train pool", *(f"w/ {set_label(m)}" for m in synthetic)]
    rows = []
    for cls in ["normal", *classes]:
        row = [cls, *(str(int(split_counts[s].get(cls, 0))) for s in splits)]
        base = int(pool_counts.get(cls, 0))
        row.append(str(base))
        for counts in synthetic.values():
            add = int(counts.get(cls, 0))
            row.append(f"{base + add} (+{add})" if add else str(base))
        rows.append(row)
    return header, rows


# --------------------------------------------------------------------------- Table 4: classification


def classification_table(
    aggregate: Mapping[str, Any],
    methods: Sequence[str] = (),
    doses: Sequence[Any] = (),
    classes: Sequence[str] = (),
) -> tuple[list[str], list[list[str]]]:
    """Rows: method x dose; columns: per-class accuracy, total accuracy, macro-F1, defect recall (%, mean ± std
    over seeds), as ``classify_aggregate`` wrote them. ``methods``, ``doses``, ``classes`` give the order
    (what they do not list follows)."""
    found: dict[str, None] = {}
    for by_dose in aggregate.values():
        for summary in by_dose.values():
            found.update(dict.fromkeys(summary.get("per_class_accuracy", {})))
    classes = _ordered(found, classes)
    header = ["method", "synthetic/class", "seeds", *(f"acc {c} (%)" for c in classes)]
    header += ["total acc (%)", "macro-F1 (%)", "defect recall (%)"]
    rows = []
    for method in _ordered(aggregate, methods):
        by_dose = aggregate[method]
        for dose in _ordered(by_dose, [str(d) for d in doses]):
            s = by_dose[dose]
            pc = s.get("per_class_accuracy", {})
            rows.append(
                [
                    set_label(method),
                    f"{dose} (chosen on val)" if s.get("selected") and len(by_dose) > 1 else str(dose),
                    fmt_int(s.get("seeds")),
                    *(_pct(pc.get(c)) for c in classes),
                    _pct(s.get("total_accuracy")),
                    _pct(s.get("macro_f1")),
                    _pct(s.get("defect_recall")),
                ]
            )
    return header, rows


def _ordered(mapping: Mapping[str, Any], first: Sequence[str]) -> list[str]:
    """The keys of ``mapping``: those listed in ``first`` in that order, then the rest (JSON files are
    written with sorted keys, so the intended order travels as a separate list)."""
    return [k for k in dict.fromkeys(first) if k in mapping] + [k for k in mapping if k not in first]


def _pct(stats: Mapping[str, Any] | None) -> str:
    if not stats:
        return NA
    return fmt_pm(stats.get("mean"), stats.get("std"), 1, scale=100.0)


def markdown(header: Sequence[str], rows: Sequence[Sequence[str]], title: str = "") -> str:
    """A GitHub-flavoured Markdown table (``|`` in cells escaped)."""

    def cell(x: str) -> str:
        return str(x).replace("|", "\\|")

    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(cell(h) for h in header) + " |")
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
