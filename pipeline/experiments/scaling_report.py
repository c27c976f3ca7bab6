"""The scaling study's published results: ``scaling.json``, ``scaling.png`` and a README, all from the records
``pipeline.experiments.scaling`` measured (one per budget), so that the numbers and the figure cannot disagree."""

from __future__ import annotations

from pathlib import Path

from syndgan.io import atomic_path, atomic_write_json, atomic_write_text

# (record key, axis label, lower is better): what the figure plots against the training images, one panel each
FIGURES = (
    ("val_macro_f1", "syndgan val macro-F1 (3 seeds)", False),
    ("recon_l1_defect_region", "painted-region L1 on val", True),
    ("fid_effnet", "fid_effnet vs real val defects", True),
    ("kid_effnet_x1e3_mean", "kid_effnet x 1e3 vs real val defects", True),
)


def variant(record: dict) -> str:
    return record.get("variant", "base")


def quality_value(record: dict, key: str, cls: str = "all") -> float | None:
    entry = record.get("quality", {}).get(cls, {})
    return entry.get(key, record.get(key) if cls == "all" else None)


def figure(records: list[dict], refs: dict, path: Path, dataset: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(FIGURES), figsize=(4.2 * len(FIGURES), 3.6))
    series = {v: [r for r in records if variant(r) == v] for v in dict.fromkeys(map(variant, records))}
    colors = ("tab:red", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")
    for ax, (key, label, lower) in zip(axes, FIGURES, strict=True):
        for (name, rs), color in zip(series.items(), colors, strict=False):
            hours, ys = [r["train_images"] / 1000 for r in rs], [quality_value(r, key) for r in rs]
            ax.plot(hours, ys, "o-", color=color, label=f"syndgan ({name})" if len(series) > 1 else "syndgan")
            for h, y, r in zip(hours, ys, rs, strict=True):
                if y is not None:
                    ax.annotate(f"{r['train_synth_steps']}", (h, y), textcoords="offset points", xytext=(3, 4),
                                fontsize=7)  # fmt: skip
            if key == "val_macro_f1":
                ax.errorbar(hours, ys, yerr=[r["val_macro_f1_std"] for r in rs], fmt="none", color=color)
        if key == "val_macro_f1":
            for (name, ref), color in zip(refs.items(), ("tab:gray", "tab:blue", "tab:green"), strict=False):
                ax.axhline(ref["val_macro_f1"], ls="--", color=color, label=f"{name} (no synthesis network)")
            ax.legend(fontsize=7)
        ax.set_xlabel("training images, thousands (pretrain + train_synth)")
        ax.set_title(f"{label}{' (lower is better)' if lower else ''}", fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(f"SyNDGAN against compute: {dataset} (labels: train_synth steps)", fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def markdown(records: list[dict], refs: dict, dataset: str) -> str:
    classes = [c for c in (records[0]["quality"] if records else {}) if c != "all"]
    head = ["variant", "pretrain steps", "train_synth steps", "px", "images (k)", "CPU-h (wall x threads)", "val macro-F1", "region L1", "fid_effnet",
            "kid_effnet x 1e3", *(f"fid {c}" for c in classes)]  # fmt: skip
    rows = []
    for r in records:
        fid, kid = quality_value(r, "fid_effnet"), quality_value(r, "kid_effnet_x1e3_mean")
        rows.append([
            variant(r), str(r["pretrain_steps"]), str(r["train_synth_steps"]), str(r["resolution"]), f"{r['train_images'] / 1000:.1f}", f"{r['cpu_hours']:.2f}",
            f"{100 * r['val_macro_f1']:.1f} ± {100 * r['val_macro_f1_std']:.1f}",
            f"{r.get('recon_l1_defect_region', float('nan')):.4f}",
            "-" if fid is None else f"{fid:.1f}", "-" if kid is None else f"{kid:.1f}",
            *("-" if quality_value(r, "fid_effnet", c) is None else f"{quality_value(r, 'fid_effnet', c):.1f}"
              for c in classes),
        ])  # fmt: skip
    lines = [
        f"# Scaling study: {dataset}",
        "",
        "One synthesis training continued budget after budget from one pretraining (`python -m pipeline.experiments.scaling`),",
        "each snapshot measured on **val** only: syndgan's classifier val macro-F1 (mean ± std over the seeds, the",
        "dose and rule chosen on val), the L1 over the painted region of val defects, and fid / kid of its",
        "augment set against the real val defects (EfficientNet-Lite0 features; tiny sets: read the trend).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        "Reference lines (val macro-F1, same k, seeds and classifier): "
        + (
            ", ".join(f"{m} {100 * v['val_macro_f1']:.1f} ± {100 * v['val_macro_f1_std']:.1f}" for m, v in refs.items())
            or "not measured yet"
        ),  # fmt: skip
        "",
        "CPU-h is the training steps' wall time x threads: it overstates the cost where other jobs shared the cores,",
        "so the figure's axis is the training images (pretrain + train_synth), which no load changes; at one",
        "resolution and size the cost per image is fixed.",
        "",
        "![quality figures against the training images](scaling.png)",
        "",
    ]
    return "\n".join(lines)


def publish(records: list[dict], refs: dict, out: Path, dataset: str) -> None:
    if not records:
        from syndgan.errors import DataError

        raise DataError(out, "nothing to publish: no budget has been measured yet (phase measure)")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "scaling.json", {"dataset": dataset, "references": refs, "records": records})
    figure(records, refs, out / "scaling.png", dataset)
    atomic_write_text(out / "README.md", markdown(records, refs, dataset))
