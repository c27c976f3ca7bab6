"""Lever screening: variants of the scarcity grid at one k and one seed, compared on val only.

    python -m pipeline.experiments.screen --params data/configs/magnetic-tile.yaml data/configs/scarcity-magnetic-tile.yaml \
        --variants data/configs/screen/*.yaml --k 10 --seed 0

Each variant file is one more params overlay, named by its file name (an empty file is the baseline). Variant
``<name>`` runs as a scarcity project in ``<workdir>/<name>/`` with ``scarcity.ks: [k]``, ``classify.seeds:
[seed]`` and no report. All variants share one DVC cache (``<workdir>/cache``), so a stage a variant does not
change is restored from DVC's run cache, not run again: ingest, rasterize, pretrain, train_synth and
train_generation, augment of a method the variant leaves alone, classifier cells. (DVC keeps no run cache for a
stage with a persistent or an uncached output: the trainings' resume states live outside the DVC outputs, in
``.syndgan/resume/``, and a work folder caches every output, ``pipeline.tools.run.cache_every_out``.)

The table (``<workdir>/screen.md``, ``screen.json``) lists per variant and method the val macro-F1 of the dose
and synthetic-sample rule chosen on val. Test numbers are not shown: screening picks on val; the chosen
variants then run the 3-seed benchmark (``pipeline.experiments.scarcity``), which reads test once. A run of some variants
replaces their rows and keeps those of other variants screened before at the same k and seed; ``--collect``
rebuilds the table from every finished variant folder without running anything.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import yaml

from pipeline.common import read_json
from pipeline.config import load_params, parse_params
from pipeline.experiments.scarcity import k_dir, merged_params, run_benchmark
from pipeline.tools.run import DVC, init_project
from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_write_json, atomic_write_text

RESERVED = {"cache"}  # folder names in <workdir> that are not variants


def screen_overlay(k: int | str, seed: int) -> dict:
    """What screening fixes on top of every variant: one k, one seed, no full report."""
    return {"scarcity": {"ks": [k], "report_ks": []}, "classify": {"seeds": [seed]}}


def share_cache(project: Path, cache: Path) -> None:
    """Point ``project``'s DVC cache (and with it the run cache) at ``cache``."""
    init_project(project)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([*DVC, "cache", "dir", str(cache.resolve())], cwd=project, check=True)


def val_rows(variant: str, metrics: dict, methods: list[str]) -> list[dict]:
    """Per method (in ``methods``' order), the val-chosen dose's val macro-F1 (``classify_aggregate``'s
    ``selected`` entry), in %."""
    rows = []
    for method in methods:
        doses = metrics[method]
        chosen = [(dose, m) for dose, m in doses.items() if m["selected"]]
        if len(chosen) != 1:
            raise DataError(f"{variant}: classify metrics", f"method {method!r} has no single val-chosen dose")
        dose, m = chosen[0]
        rows.append(
            {"variant": variant, "method": method, "dose": dose, "val_macro_f1": 100 * m["val_macro_f1"]["mean"]}
        )
    return rows


def merge_rows(before: list[dict], new: list[dict]) -> list[dict]:
    """``before``'s rows with those of ``new``'s variants replaced in place; variants new to it at the end."""
    fresh: dict[str, list[dict]] = {}
    for r in new:
        fresh.setdefault(r["variant"], []).append(r)
    out, done = [], set()
    for r in before:
        v = r["variant"]
        if v not in fresh:
            out.append(r)
        elif v not in done:
            out += fresh[v]
            done.add(v)
    return out + [r for v, rs in fresh.items() if v not in done for r in rs]


def variant_rows(project: Path, k: int | str, seed: int) -> list[dict]:
    """The val rows of one variant folder, from the merged params the benchmark wrote there; [] when it has no
    finished table at this k and seed."""
    params = load_params(project / "params.yaml")
    metrics = project / k_dir(k) / params.classify.metrics
    if params.classify.seeds != [seed] or not metrics.is_file():
        return []
    return val_rows(project.name, read_json(metrics), params.classify.methods)


def collect(workdir: Path, k: int | str, seed: int) -> list[dict]:
    """Rows of every variant folder in ``workdir`` finished at this k and seed (``base`` first, then by name)."""
    folders = [p for p in workdir.iterdir() if p.is_dir() and p.name not in RESERVED and (p / "params.yaml").is_file()]
    rows = []
    for project in sorted(folders, key=lambda p: (p.name != "base", p.name)):
        rows += variant_rows(project, k, seed)
    return rows


def write_table(workdir: Path, rows: list[dict], k: int | str, seed: int) -> str:
    atomic_write_json(workdir / "screen.json", rows)
    text = markdown(rows, k, seed)
    atomic_write_text(workdir / "screen.md", text)
    return text


def markdown(rows: list[dict], k: int | str, seed: int) -> str:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    table = {(r["variant"], r["method"]): r for r in rows}
    lines = [
        f"### Lever screening: val macro-F1 (%), k = {k}, seed {seed} (dose and rule chosen on val)",
        "",
        "| variant | " + " | ".join(methods) + " |",
        "|---|" + "---|" * len(methods),
    ]
    for variant in dict.fromkeys(r["variant"] for r in rows):
        cells = [table.get((variant, m)) for m in methods]
        lines.append(
            f"| {variant} | "
            + " | ".join("-" if c is None else f"{c['val_macro_f1']:.1f} ({c['dose']})" for c in cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def run_screen(params_files: list[Path], variants: list[Path], workdir: Path, k: int | str, seed: int) -> int:
    names = [v.stem for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"--variants: file names must be unique (they name the variants), got {names}")
    if RESERVED & set(names):
        raise ConfigError(f"--variants: {sorted(RESERVED & set(names))[0]!r} is reserved (the shared DVC cache)")
    workdir.mkdir(parents=True, exist_ok=True)
    fixed = workdir / "screen-overlay.yaml"
    same = fixed.is_file() and yaml.safe_load(fixed.read_text(encoding="utf-8")) == screen_overlay(k, seed)
    rows = (read_json(workdir / "screen.json", required=False) or []) if same else []  # another k or seed: anew
    atomic_write_text(fixed, yaml.safe_dump(screen_overlay(k, seed)))
    for variant in variants:
        project = workdir / variant.stem
        share_cache(project, workdir / "cache")
        print(f"== variant {variant.stem} ({variant})", flush=True)
        if run_benchmark([*params_files, variant, fixed], project, ks=[k], show_table=False) != 0:
            return 1
        rows = merge_rows(rows, variant_rows(project, k, seed))
        write_table(workdir, rows, k, seed)  # after each variant: a killed screen keeps what ran
    print(markdown(rows, k, seed), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.screen", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, nargs="+", required=True, help="the benchmark's overlays, in order")
    ap.add_argument("--variants", type=Path, nargs="+", help="one overlay per variant")
    ap.add_argument("--collect", action="store_true", help="rebuild the table from the finished variant folders")
    ap.add_argument("--k", default="10", help="defect images per class kept in train (or all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None, help="default: runs/screen-<scarcity.dataset>-k<k>")
    args = ap.parse_args(argv)
    k = args.k if args.k == "all" else int(args.k)
    try:
        files = [f.resolve() for f in args.params]
        dataset = parse_params(merged_params(files)).scarcity.dataset
        workdir = (args.workdir or Path("runs") / f"screen-{dataset}-k{k}").resolve()
        if args.collect:
            rows = collect(workdir, k, args.seed) if workdir.is_dir() else []
            if not rows:
                raise DataError(workdir, f"no variant folder finished at k = {k}, seed {args.seed}")
            print(write_table(workdir, rows, k, args.seed), flush=True)
            return 0
        if not args.variants:
            raise ConfigError("--variants: give one overlay per variant (or --collect)")
        for v in args.variants:
            if not v.is_file():
                raise DataError(v, "variant overlay not found")
        return run_screen(files, [v.resolve() for v in args.variants], workdir, k, args.seed)
    except (ConfigError, DataError) as e:
        print(f"screen: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
