"""Headline metrics (pure): a few flat numbers per method, one row per method (or evaluated set).

``dvc metrics show`` prints one row per metrics file and one column per key, so one small file per row with
the same short keys in each reads as the method x metric table and stays narrow; ``dvc metrics diff`` then
compares flat, short names. Everything here is read from the stages' detailed JSON (classify_aggregate,
evaluate, pretrain); a value that was not computed is left out, never filled in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syndgan.report.tables import ABLATION_PREFIX, ALL

# Classification columns in percent (mean over seeds, and their std), at the dose chosen on val.
PERCENT_DIGITS = 2
DISTANCE_DIGITS = 2  # FID / KID x1e3: their run-to-run noise is far above 0.01
OTHER_DIGITS = 4


def _pct(stats: Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    if not stats or stats.get("mean") is None:
        return None, None
    std = stats.get("std")
    return round(100 * stats["mean"], PERCENT_DIGITS), None if std is None else round(100 * std, PERCENT_DIGITS)


def _num(value: Any, digits: int = OTHER_DIGITS) -> float | None:
    return None if value is None else round(float(value), digits)


def selected_dose(doses: Mapping[str, Mapping[str, Any]]) -> str | None:
    """The dose classify_aggregate chose on val (its ``selected`` flag); None when none is marked."""
    chosen = [d for d, s in doses.items() if s.get("selected")]
    return chosen[0] if chosen else None


def classification_rows(aggregate: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> dict[str, dict[str, Any]]:
    """classify_aggregate's {method: {dose: summary}} -> {method: {dose, seeds, total, total_sd, f1, f1_sd,
    defect_recall, normal_recall}} at the selected dose."""
    rows: dict[str, dict[str, Any]] = {}
    for method, doses in aggregate.items():
        dose = selected_dose(doses)
        if dose is None:
            continue
        s = doses[dose]
        total, total_sd = _pct(s.get("total_accuracy"))
        f1, f1_sd = _pct(s.get("macro_f1"))
        defect, _ = _pct(s.get("defect_recall"))
        normal, _ = _pct((s.get("per_class_accuracy") or {}).get("normal"))
        row = {"dose": dose, "seeds": s.get("seeds"), "total": total, "total_sd": total_sd, "f1": f1}
        row.update(f1_sd=f1_sd, defect_recall=defect, normal_recall=normal)
        rows[method] = row
    return rows


def quality_rows(evaluate: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """evaluate's pooled (all classes) FID / KID x1e3 per evaluated set, and each synthesis network's defect
    reconstruction L1 / perceptual distance; rows named as the sets (``syndgan_<ablation>`` for ablations)."""
    names = evaluate.get("metric_names") or {}
    fid, kid = names.get("fid"), names.get("kid")
    rows: dict[str, dict[str, Any]] = {}
    for name, per_class in (evaluate.get("synthesis") or {}).items():
        pooled = per_class.get(ALL) or {}
        row = rows.setdefault(name, {})
        if fid and pooled.get(fid) is not None:
            row["fid"] = _num(pooled[fid], DISTANCE_DIGITS)
        if kid and pooled.get(f"{kid}_x1e3_mean") is not None:
            row["kid_x1e3"] = _num(pooled[f"{kid}_x1e3_mean"], DISTANCE_DIGITS)
    recon = evaluate.get("reconstruction") or {}
    perceptual = recon.get("perceptual")
    for model, m in (recon.get("models") or {}).items():
        row = rows.setdefault("syndgan" if model == "syndgan" else ABLATION_PREFIX + model, {})
        if m.get("recon_l1_defect") is not None:
            row["recon_l1"] = _num(m["recon_l1_defect"])
        if perceptual and m.get(f"recon_{perceptual}_defect") is not None:
            row["recon_perc"] = _num(m[f"recon_{perceptual}_defect"])
    return {k: v for k, v in rows.items() if v}


def headline_rows(
    aggregate: Mapping[str, Any] | None, evaluate: Mapping[str, Any] | None, pretrain: Mapping[str, Any] | None
) -> dict[str, dict[str, Any]]:
    """{row name: flat {metric: value}}: classification, pooled synthesis quality and reconstruction per
    method, and the pretrained generator's final FID (``gan_fid``) on the syndgan row. Inputs may be None
    (that stage's file is absent); values that are None are dropped."""
    rows: dict[str, dict[str, Any]] = {}
    for part in (classification_rows(aggregate or {}), quality_rows(evaluate or {})):
        for name, values in part.items():
            rows.setdefault(name, {}).update(values)
    if pretrain and pretrain.get("fid_effnet") is not None:
        rows.setdefault("syndgan", {})["gan_fid"] = _num(pretrain["fid_effnet"], DISTANCE_DIGITS)
    return {name: {k: v for k, v in row.items() if v is not None} for name, row in rows.items()}
