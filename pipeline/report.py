"""Stage `report`: ``<report.out>/report.md`` and a self-contained ``<report.out>/report.html`` (figures
embedded, opens offline), with the figures as PNGs in ``<report.out>/figures/``.

    python -m pipeline.report [--params params.yaml]

Sections: dataset counts before / after augmentation (paper Table 3), synthesis quality (Table 1, from
``evaluate.metrics``), reconstruction (Tables 2 and 5), classification (Table 4, from ``classify.metrics``)
with confusion matrices summed over seeds, image grids per class (normal | mask | each method's image |
the real defect the mask came from), training curves (pretrain and train_synth logs), and the exact
params file and code version (git commit, dirty flag). Every number is read from a stage output; a section
whose inputs are missing says "Not run" and names what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.common import project_relative, stage_main
from pipeline.config import Params
from pipeline.provenance import git_version, synthesis_stage, what_ran
from pipeline.report_inputs import (
    NOT_RUN,
    RAW_GRID_SCALE,
    Figures,
    Missing,
    image_methods,
    load_processed,
    method_stage,
    no_log,
    read_image,
    read_log,
    read_output,
    reconstruction_inputs,
    train_pool_counts,
)
from syndgan.errors import DataError
from syndgan.io import atomic_dir, atomic_write_text
from syndgan.report.document import Document, render_html, render_markdown
from syndgan.report.figures import colorize_labelmap, confusion_figure, curves_figure, image_grid
from syndgan.report.gate import GRID_CAPTION, gate_grid, gate_paragraph, gate_table
from syndgan.report.tables import (
    ABLATION_PREFIX,
    classification_table,
    counts_table,
    fmt,
    reconstruction_table,
    set_label,
    synthesis_table,
)

log = logging.getLogger("syndgan.report")

# --------------------------------------------------------------------------- sections


def section_dataset(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Dataset: images per class before and after augmentation (paper Table 3)")
    dataset = load_processed(params, figs)
    index, classes = dataset.index, dataset.class_names
    split_counts = {s: g["label"].value_counts().to_dict() for s, g in index.groupby("split")}
    synthetic = {
        m: manifest["label"].value_counts().to_dict()
        for m, (folder, manifest) in image_methods(params, figs).items()
        if folder.parent == params.resolve(params.augment.out)
    }
    k = dataset.k_shot
    doc.paragraph(
        f"{len(index)} images at {dataset.resolution} px, {dataset.channels} channel(s), from "
        f"`{project_relative(params.resolve(params.rasterize.out))}`. Train pool: the train images augmentation and "
        f"the classifiers use ({'all of them' if k is None else f'k_shot = {k} per defect class'}). "
        "`w/ <method>`: train pool + the synthetic images the augment stage made (every classifier dose takes "
        "the first of them by rank)."
    )
    doc.table(*counts_table(split_counts, classes, train_pool_counts(dataset), synthetic))
    if not synthetic:
        doc.paragraph(f"{NOT_RUN}: no augment output with images under `{params.augment.out}`.")


def section_synthesis(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Synthesis quality (paper Table 1)")
    ev = read_output(params.resolve(params.evaluate.metrics), "evaluate", figs)
    names = ev.get("metric_names", {})
    doc.paragraph(
        f"Each set's images of a class against the real test defects of that class ({ev.get('reference', '')}); "
        f"`all` pools the classes. At most {ev.get('max_images_per_class')} synthesized images per class. "
        f"Metrics: {', '.join(f'`{names[k]}`' for k in ('fid', 'kid', 'ic') if k in names)} (names say which network measured them; "
        "KID ×10³ as mean ± std over subsets of the size shown). The first row, Real (train vs test), scores the "
        "real train defects the same way: with this few real images, differences smaller than its distance "
        "are not meaningful. KID is unbiased in the set sizes; FID is not (fewer images, larger FID), so "
        "compare FID only between rows with similar image counts. "
        "IC (diversity, higher = more diverse) clusters each set on the real train defects; the real row's "
        "IC is that of the real test defects."
    )
    doc.table(*synthesis_table(ev), caption="All classes pooled")
    doc.table(*synthesis_table(ev, per_class=True), caption="Per class")
    if ev.get("not_run"):
        doc.paragraph(f"{NOT_RUN}: " + "; ".join(f"{set_label(k)}: {v}" for k, v in ev["not_run"].items()))


def section_reconstruction(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Reconstruction (paper Tables 2 and 5)")
    recon = reconstruction_inputs(params, figs)
    if not recon.get("models"):
        reasons = "; ".join(f"{k}: {v}" for k, v in recon.get("not_run", {}).items())
        raise Missing(f"train_synth: no reconstruction metrics ({reasons})")
    doc.paragraph(
        f"Distance between real images of the `{params.train_synth.eval_split}` split and their reconstruction "
        f"by the synthesis network given their own label map (normal, defect) or an empty one (defect, empty "
        f"map: the paper's setting), with `{recon.get('perceptual')}`; lower is better."
    )
    doc.table(*reconstruction_table(recon))
    if recon.get("not_run"):
        doc.paragraph(f"{NOT_RUN}: " + "; ".join(f"{k}: {v}" for k, v in recon["not_run"].items()))
    for name, folder in [("syndgan", params.train_synth.out)] + [
        (a, str(Path(params.train_synth.ablation_out) / a)) for a in params.train_synth.ablations
    ]:
        png = params.resolve(folder) / "reconstructions.png"
        if png.is_file():
            figs.source(png, synthesis_stage(name))
            label = "SyNDGAN" if name == "syndgan" else set_label(f"{ABLATION_PREFIX}{name}")
            caption = f"{label}: real | input | reconstruction"
            figs.add(doc, f"reconstructions_{name}.png", png.read_bytes(), caption, scale=RAW_GRID_SCALE)


def section_classification(params: Params, doc: Document, figs: Figures) -> None:
    c = params.classify
    doc.heading("Classification (paper Table 4)")
    agg = read_output(params.resolve(c.metrics), "classify_aggregate", figs)
    doc.paragraph(
        "EfficientNet-Lite0 test accuracy per class, total accuracy, macro-F1 and defect recall (any defect "
        "predicted as a defect), in %, mean ± std over the seeds; the same step budget for every method. "
        "Where a method ran several doses (or synthetic-use rules, `classify.synthetic`: e.g. 30_w0.3 = 30 per "
        'class at loss weight 0.3), the one with the best val macro-F1 is marked "chosen on val" and is '
        "the one shown in the confusion matrices."
    )
    keys = [key for key, _, _ in c.runs_of(True)]  # doses x synthetic-use rules, in params order
    doc.table(*classification_table(agg, c.methods, keys, _class_order(params, figs)))
    panels, used = [], []
    for method in [m for m in dict.fromkeys([*c.methods, *agg]) if m in agg]:
        chosen = next(d for d, s in agg[method].items() if s["selected"])
        summed = summed_confusion(params, method, chosen, figs)
        if summed is None:
            doc.paragraph(f"{NOT_RUN}: no classify run of {method} under `{c.out}` for seeds {c.seeds}.")
            continue
        confusion, classes, seeds, dose = summed
        panels.append((f"{set_label(method)} (dose {dose})", confusion, classes))
        used.append(f"{set_label(method)}: dose {dose}, seeds {seeds}")
    if panels:
        caption = (
            "Test confusion matrices summed over the seeds, each method at its dose chosen on val ("
            + "; ".join(used)
            + ")"
        )
        figs.add(doc, "confusion.png", confusion_figure(panels), caption)
    if len(c.methods) > 1:  # which method to take, and whether its gap over none is larger than the noise
        path = params.resolve(c.verdict)
        try:
            verdict = read_output(path, "classify_aggregate", figs)["sentence"]
        except Missing as e:
            verdict = f"{NOT_RUN}: {e}"
        doc.paragraph(f"**Verdict.** {verdict}")


def summed_confusion(
    params: Params, method: str, dose: str, figs: Figures
) -> tuple[np.ndarray, list[str], list[int], str] | None:
    """(test confusion matrix summed over the seeds, classes, seeds found, dose) of a method's classify runs
    at ``dose`` (the one chosen on val; ``0`` for training-time methods); None when no run exists."""
    c = params.classify
    confusion, classes, seeds = None, [], []
    for seed in c.seeds:
        path = params.resolve(c.out) / f"{method}-s{seed}" / "metrics.json"
        if not path.is_file():
            continue
        run = read_output(path, f"classify@{method}-{seed}", figs)
        doses = run.get("doses", {})
        if dose not in doses:
            continue
        cm = np.asarray(doses[dose]["confusion"], float)
        if confusion is not None and cm.shape != confusion.shape:
            raise DataError(path, f"confusion matrix {cm.shape} differs from the other seeds' {confusion.shape}")
        confusion = cm if confusion is None else confusion + cm
        classes = list(doses[dose].get("classes", run.get("classes", [])))
        seeds.append(seed)
    return None if confusion is None else (confusion, classes, seeds, dose)


def _class_order(params: Params, figs: Figures) -> list[str]:
    """normal, then the defect classes in id order (dataset.json; params when it is missing)."""
    try:
        return ["normal", *load_processed(params, figs).class_names]
    except Missing:
        return ["normal", *params.ingest.classes]


def section_grids(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Synthesized examples per class")
    dataset = load_processed(params, figs)
    methods = image_methods(params, figs)
    if not methods:
        raise Missing(f"augment: no synthesized images under {params.augment.out}")
    root, mode = dataset.root, dataset.mode
    images = dataset.index.set_index("id")["image"].to_dict()
    colors = {int(c["id"]): c["color"] for c in dataset.classes}
    # unpaired methods (generation-only) sample whole images: no normal image or mask to line up with
    unpaired = {m for m, (_, manifest) in methods.items() if (manifest["transform"] == "[]").all()}
    paired = [m for m in methods if m not in unpaired]
    lead_name = "syndgan" if "syndgan" in paired else next(iter(paired or methods))
    lead_folder, lead = methods[lead_name]
    doc.paragraph(
        "Rows: the first synthesized images of the class. Every method paints the same placed mask on the same "
        "normal train image (pairing and placement depend only on the seed); the last column is the real train "
        "defect the mask was taken from."
        + (" Generation-only methods sample whole images: their column shows their image of the same number, "
           "with no normal image or mask behind it." if unpaired else "")
    )  # fmt: skip
    n = params.report.grid_rows
    for c in dataset.classes:
        rows_df = lead[lead["label"] == c["name"]].sort_values("rank").head(n)
        if rows_df.empty:
            doc.paragraph(f"{NOT_RUN}: no synthesized {c['name']!r} image.")
            continue
        columns = ["normal", "mask", *(set_label(m) for m in methods), "real (mask source)"]
        grid = []
        for r in rows_df.itertuples(index=False):
            cells = [read_image(root, images.get(r.normal_source), mode)]
            cells.append(colorize_labelmap(read_image(lead_folder, r.labelmap, "L"), colors))
            for m, (folder, manifest) in methods.items():
                # the same candidate number (id suffix) has the same pairing in every method, gated or not
                number = manifest["id"].str.rsplit("/", n=1).str[-1] == r.id.rsplit("/", 1)[-1]
                match = manifest[(manifest["label"] == r.label) & number]
                same = not match.empty and (
                    m in unpaired
                    or match.iloc[0]["normal_source"] == r.normal_source
                    and match.iloc[0]["mask_source"] == r.mask_source
                )
                cells.append(read_image(folder, match.iloc[0]["image"], mode) if same else None)
            cells.append(read_image(root, images.get(str(r.mask_source).split("|")[0]), mode))
            grid.append(cells)
        png = image_grid(grid, columns, title=c["name"])
        figs.add(doc, f"grid_{c['name']}.png", png, f"{c['name']}: {' | '.join(columns)}")  # the columns drawn


def section_gate(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Quality gate: synthetic images kept and rejected")
    gated = {m: f for m, (f, _) in image_methods(params, figs).items() if (f / "gate.json").is_file()}
    if not gated:
        raise Missing(f"augment.gate.scorer is {params.augment.gate.scorer!r}: no augment output was gated")
    summaries = {m: read_output(f / "gate.json", method_stage(params, f), figs) for m, f in gated.items()}
    doc.paragraph(gate_paragraph(summaries))
    doc.table(*gate_table(summaries))
    ds = load_processed(params, figs)
    for m, f in gated.items():
        table = pd.read_parquet(figs.source(f / "gate.parquet", method_stage(params, f)))
        png = gate_grid(f, table, ds.class_names, params.report.grid_rows, ds.mode)
        figs.add(doc, f"gate_{m}.png", png, f"{set_label(m)}: {GRID_CAPTION}")


def section_curves(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Training curves")
    pre_plots = params.resolve(params.pretrain.plots)
    losses, fid = (read_log(pre_plots / f"{name}.csv", "pretrain", figs) for name in ("losses", "fid"))
    if losses is not None or fid is not None:
        panels = []
        if losses is not None:
            panels.append(
                ("pretrain losses", {k: (losses["step"], losses[k]) for k in ("loss_d", "loss_g") if k in losses})
            )
        if fid is not None and "fid_effnet" in fid:
            panels.append(
                ("pretrain fid_effnet (G_ema samples vs train)", {"fid_effnet": (fid["step"], fid["fid_effnet"])})
            )
        figs.add(doc, "curves_pretrain.png", curves_figure(panels), "Pretraining (ProjectedGAN): losses and fid_effnet")
    else:
        doc.paragraph(no_log(params, "pretrain", pre_plots / "losses.csv"))
    pre_metrics = params.resolve(params.pretrain.metrics)
    if pre_metrics.is_file():
        m = read_output(pre_metrics, "pretrain", figs)
        doc.table(
            ["pretrain", "fid_effnet at start", "fid_effnet at end", "steps", "images/s"],
            [["generator", fmt(m.get("fid_effnet_start")), fmt(m.get("fid_effnet")), str(m.get("steps")), fmt(m.get("images_per_s"), 1)]],
        )  # fmt: skip
    samples = sorted((params.resolve(params.pretrain.out) / "samples").glob("step_*.png"))
    if samples:
        caption = f"Pretrained generator: G_ema samples at the last logged step ({samples[-1].stem})"
        png = figs.source(samples[-1], "pretrain").read_bytes()
        figs.add(doc, "pretrain_samples.png", png, caption, scale=RAW_GRID_SCALE)
    ts = params.train_synth
    logs = {"syndgan": params.resolve(ts.plots) / "losses.csv"}
    logs.update({a: params.resolve(ts.ablation_out) / a / "losses.csv" for a in ts.ablations})
    tables = {
        name if name == "syndgan" else f"{ABLATION_PREFIX}{name}": df
        for name, path in logs.items()
        if (df := read_log(path, synthesis_stage(name), figs)) is not None
    }
    if tables:
        panels = []
        for key in ("l1", "l1_region", "perceptual", "adv", "inversion", "loss_d"):
            series = {  # a term that is off logs zeros: no panel for it
                set_label(n): (df["step"], df[key])
                for n, df in tables.items()
                if key in df and (df[key].fillna(0) != 0).any()
            }
            if series:
                panels.append((f"train_synth {key}", series))
        figs.add(doc, "curves_train_synth.png", curves_figure(panels), "SyNDGAN training (and ablations): losses")
    else:
        doc.paragraph(no_log(params, "train_synth", logs["syndgan"]))


def section_provenance(params: Params, doc: Document, figs: Figures) -> None:
    doc.heading("Parameters and code version")
    doc.paragraph(f"Code version: `{git_version()}`.")
    doc.paragraph(f"Parameters: `{params.path}`, as used:")
    path = Path(params.path)
    doc.code(path.read_text(encoding="utf-8") if path.is_file() else f"({path} not found)", "yaml")


SECTIONS: list[Callable[[Params, Document, Figures], None]] = [
    section_dataset,
    section_synthesis,
    section_reconstruction,
    section_classification,
    section_grids,
    section_gate,
    section_curves,
    section_provenance,
]


def build(params: Params) -> tuple[Document, Figures]:
    out = params.resolve(params.report.out)
    doc = Document(params.report.title)
    doc.paragraph(f"Generated by `python -m pipeline.report` from the pipeline's outputs; code `{git_version()}`.")
    doc.paragraph("")  # the stages read: known once every section has read what it shows
    stages = doc.blocks[-1]
    figs = Figures(out / "figures")
    for section in SECTIONS:
        mark, made, read = len(doc.blocks), set(figs.files), set(figs.read)
        try:
            section(params, doc, figs)
        except Missing as e:
            del doc.blocks[mark + 1 :]  # keep the heading, drop a half-built section and what it read
            for name in set(figs.files) - made:
                del figs.files[name]
            for path in set(figs.read) - read:
                del figs.read[path]
            doc.paragraph(f"{NOT_RUN}: {e}.")
            log.info("report section %s: not run (%s)", section.__name__, e)
    ran, absent = what_ran(params, figs.read.values())
    stages.text = f"Stages whose outputs this report read: {', '.join(ran) or 'none'}." + (
        f" No output (not run): {', '.join(absent)}." if absent else ""
    )
    return doc, figs


def run(params: Params) -> Path:
    out = params.resolve(params.report.out)
    doc, figs = build(params)
    with atomic_dir(out / "figures") as tmp:
        for name, png in figs.files.items():
            (tmp / name).write_bytes(png)
    atomic_write_text(out / "report.md", render_markdown(doc, out))
    atomic_write_text(out / "report.html", render_html(doc))
    log.info("wrote %s and %s (%d figures)", out / "report.md", out / "report.html", len(figs.files))
    return out / "report.html"


def outputs(params: Params) -> list[Path]:
    out = Path(params.report.out)
    return [out / "report.md", out / "report.html", out / "figures"]


def main(argv: list[str] | None = None) -> int:
    return stage_main("report", run, argv, __doc__, outputs=outputs)


if __name__ == "__main__":
    raise SystemExit(main())
