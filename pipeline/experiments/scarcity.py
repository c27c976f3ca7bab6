"""The scarcity benchmark: how each method's classifier fares with k real defect images per class.

    make benchmark                      # the demo data: data/configs/scarcity-demo.yaml
    python -m pipeline.experiments.scarcity --params data/configs/magnetic-tile.yaml data/configs/scarcity-magnetic-tile.yaml

The params files are overlays of the project's params.yaml (applied in order; the last one holds the
``scarcity`` section). For every k in
``scarcity.ks`` the folder ``<workdir>/k<k>/`` holds this project's own ``dvc.yaml`` and the params with
``rasterize.k_shot: k``, so pretrain, train_synth, train_generation, augment and classify all learn from the k kept images only,
and classify runs ``classify.methods`` x ``classify.seeds`` x ``classify.doses`` there; each method's dose is
chosen on val by ``classify_aggregate``. ``<workdir>`` is a DVC project of its own (``dvc init --no-scm``, laid out by ``pipeline.tools.run``):
``dvc repro`` there builds every cell, caches each finished stage and, after a kill, resumes where it stopped;
its stage ``scarcity`` (``--aggregate``) writes the records, the DVC metrics and plots, the table and the PNG.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pipeline.common import read_json
from pipeline.config import Params, load_params, load_raw, merge_params, parse_params
from pipeline.methods import TRAINING_STAGES, augment_items, trainings, validate
from pipeline.provenance import git_version
from pipeline.tools.run import DVC, ROOT, absolute_code_paths, dvc_env, init_project, project_pipeline, write_if_changed
from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_dir, atomic_write_json, atomic_write_text

# What one k needs: everything up to the classification table (no evaluate, report or ablations).
STAGES = (
    "demo", "ingest", "rasterize", "pretrain", "train_synth", "train_generation", "augment", "classify",
    "classify_aggregate",
)  # fmt: skip
REPORT_STAGES = ("train_synth_ablation", "evaluate", "report")  # the ks in scarcity.report_ks: the full report


def k_dir(k: int | str) -> str:
    return f"k{k}"


def merged_params(files: list[Path]) -> dict:
    """params.yaml with each file laid over it in turn (``pipeline.config.merge_params``)."""
    merged = load_raw(ROOT / "params.yaml")
    for f in files:
        merged = merge_params(merged, load_raw(f), f)
    return merged


def write_project(params_files: list[Path], workdir: Path, ks: list | None = None) -> Params:
    """Lay out (or refresh) the benchmark's DVC project; returns the merged params. ``ks`` overrides
    ``scarcity.ks`` (part of the grid now, the rest in a later run: finished cells stay cached)."""
    merged = merged_params(params_files)
    src = " + ".join(str(f) for f in params_files)
    if ks is not None:  # the report ks outside this part of the grid wait for their own run
        report_ks = [k for k in parse_params(merged, src).scarcity.report_ks if str(k) in map(str, ks)]
        merged = merge_params(merged, {"scarcity": {"ks": ks, "report_ks": report_ks}})
    params = parse_params(merged, src)
    validate(params)
    init_project(workdir)
    stages = {name: st for name, st in project_pipeline()["stages"].items() if name in STAGES + REPORT_STAGES}
    if not params.train_synth.ablations:
        del stages["train_synth_ablation"]  # DVC refuses an empty foreach
    methods = params.classify.methods
    # Only what the grid's methods need: no training whose network none of them renders with (the registry says
    # which: pipeline.methods), and no pretraining either unless one of them or the quality gate (scoring with its
    # discriminator) needs it (else augment's `scorer` dep is its method's own).
    stages["augment"]["foreach"] = absolute_code_paths(augment_items(params, methods))
    needed = trainings(methods)
    for stage in set(TRAINING_STAGES.values()) - needed:
        del stages[stage]
    if not needed and params.augment.gate.scorer != "discriminator":
        del stages["pretrain"]
        stages["augment"]["foreach"] = {m: {**v, "scorer": v["needs"]} for m, v in stages["augment"]["foreach"].items()}
    sc = params.scarcity
    for k in sc.ks:
        d = workdir / k_dir(k)
        d.mkdir(exist_ok=True)
        (d / "data" / "raw").mkdir(parents=True, exist_ok=True)  # ingest's watched input folder
        k_params = merge_params(merged, {"rasterize": {"k_shot": None if k == "all" else k}})
        parse_params(k_params, d / "params.yaml")  # fail now, naming the k, not inside a stage
        write_if_changed(d / "params.yaml", yaml.safe_dump(k_params, sort_keys=False))
        full = str(k) in map(str, sc.report_ks)
        k_stages = {name: st for name, st in stages.items() if full or name in STAGES}
        write_if_changed(d / "dvc.yaml", yaml.safe_dump({"stages": k_stages}, sort_keys=False))
    c = params.classify
    runs = _cells(params)
    agg = {
        "cmd": "python -m pipeline.experiments.scarcity --aggregate",
        "deps": [f"{k_dir(k)}/{f}" for k in sc.ks for f in (c.metrics, c.verdict)]
        + [f"{k_dir(k)}/{params.report.out}/report.html" for k in sc.report_ks]  # so that repro builds them
        + runs
        + [str(ROOT / "pipeline/experiments/scarcity.py"), str(ROOT / "syndgan/classify/scarcity.py")],
        "params": ["scarcity", "classify.methods", "classify.seeds"],
        "outs": [
            {sc.records: {"cache": False}},
            {sc.table: {"cache": False}},
            {sc.figure: {"cache": False}},
            {sc.verdicts: {"cache": False}},
        ],  # fmt: skip
        "metrics": [{sc.summary: {"cache": False}}],
        "plots": [{sc.plot: {"x": "k_index", "y": "macro_f1", "title": "test macro-F1 against k", "cache": False}}],
    }
    write_if_changed(workdir / "params.yaml", yaml.safe_dump(merged, sort_keys=False))
    write_if_changed(workdir / "dvc.yaml", yaml.safe_dump({"stages": {"scarcity": agg}}, sort_keys=False))
    return params


def aggregate(params: Params) -> dict:
    """Stage ``scarcity`` (run in the benchmark folder): records, summary, table, plot data, figure."""
    from syndgan.classify.scarcity import figure, markdown, plot_rows, records_from_runs, summarize, verdict_lines

    sc, c = params.scarcity, params.classify
    records = []
    for k in sc.ks:
        agg_path = params.resolve(k_dir(k)) / c.metrics
        agg = read_json(agg_path, hint="the benchmark has not finished this k (run it again)")
        selected = {m: next(d for d, s in doses.items() if s["selected"]) for m, doses in agg.items()}
        runs = []
        for method in c.methods:
            for seed in c.seeds:
                path = params.resolve(k_dir(k)) / c.out / f"{method}-s{seed}" / "metrics.json"
                runs.append(read_json(path))
        records += records_from_runs(sc.dataset, k, runs, selected)
    summary = summarize(records)
    verdicts = {f"k={k}": read_json(params.resolve(k_dir(k)) / c.verdict) for k in sc.ks}
    atomic_write_json(params.resolve(sc.records), records)
    atomic_write_json(params.resolve(sc.summary), summary)
    atomic_write_json(params.resolve(sc.verdicts), verdicts)
    table = "\n".join([markdown(summary, sc.dataset), "Verdict per k:", "", *verdict_lines(verdicts), ""])
    atomic_write_text(params.resolve(sc.table), table)
    import pandas as pd

    plot_path = params.resolve(sc.plot)
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(plot_path, pd.DataFrame(plot_rows(summary)).to_csv(index=False))
    figure(summary, params.resolve(sc.figure), sc.dataset)
    print(table)
    return summary


def _cells(params: Params) -> list[str]:
    """The grid's classify output folders, relative to the benchmark folder (one per k, method, seed)."""
    c = params.classify
    return [f"{k_dir(k)}/{c.out}/{m}-s{s}" for k in params.scarcity.ks for m in c.methods for s in c.seeds]


def run_benchmark(
    params_files: list[Path],
    workdir: Path,
    log_name: str = "repro.log",
    ks: list | None = None,
    show_table: bool = True,
) -> int:
    """Lay out the project, run ``dvc repro`` in it with a progress bar over the grid's cells. ``show_table``:
    print the finished table (test numbers; screening, which must choose on val, turns it off)."""
    from tqdm import tqdm

    params = write_project(params_files, workdir, ks)
    version = git_version(ROOT)  # the code the cells run with, recorded for the published README
    cells = [Path(d) / "metrics.json" for d in _cells(params)]
    env = dvc_env()
    log_path = workdir / log_name
    t0 = time.time()
    print(f"scarcity benchmark: {len(cells)} classifier cells in {workdir} (log: {log_path})", flush=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([*DVC, "repro"], cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        bar = tqdm(total=len(cells), desc="scarcity", unit="cell")
        done = threading.Event()

        def watch():
            stage = re.compile(rb"Running stage '([^']+)'")
            while not done.wait(2.0):
                n = sum((workdir / p).is_file() for p in cells)
                bar.update(n - bar.n)
                found = stage.findall(log_path.read_bytes()[-20000:])
                if found and found[-1].decode() != bar.postfix:
                    bar.set_postfix_str(found[-1].decode(), refresh=True)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        rc = proc.wait()
        done.set()
        watcher.join()
        bar.update(sum((workdir / p).is_file() for p in cells) - bar.n)
        bar.close()
    minutes = (time.time() - t0) / 60
    if rc != 0:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
        print("\n".join(tail), file=sys.stderr)
        print(f"scarcity: error: dvc repro failed after {minutes:.1f} min; see {log_path}", file=sys.stderr)
        return 1
    if (end := git_version(ROOT)) != version:  # the stages import ROOT's tree as it is when each one starts
        version = f"{version}, but the tree changed during the run to {end}"
        print(f"scarcity: warning: the code changed during the run (runs.json says so): {end}", file=sys.stderr)
    runs_path = workdir / "runs.json"  # wall time of every benchmark run, for the report
    history = read_json(runs_path, required=False) or []
    history.append(
        {"ks": [str(k) for k in params.scarcity.ks], "minutes": round(minutes, 1), "cells": len(cells), "code": version}
    )
    atomic_write_json(runs_path, history)
    print(f"scarcity benchmark done in {minutes:.1f} min: {workdir / params.scarcity.table}", flush=True)
    if show_table:
        print((workdir / params.scarcity.table).read_text(encoding="utf-8"), flush=True)
    return 0


def _json_list(path: Path) -> list:
    return read_json(path, required=False) or []


def _params_files(run: dict) -> list[str]:
    """The params files a published run wrote (entries from before they were named: ``params/k<k>.yaml``)."""
    return [run.get("params", {}).get(k, f"params/{k_dir(k)}.yaml") for k in run["ks"]]


def _still_shown(runs: list[dict], records: list[dict]) -> list[dict]:
    """The runs (oldest first, the newest last) that made some of ``records``, each with the ks where rows of
    it remain: the newest run owns each (k, method) it ran; entries from before runs named their methods
    ran every method of their ks."""
    present = {(str(r["k"]), r["method"]) for r in records}
    claimed: set[tuple[str, str]] = set()
    shown = []
    for run in reversed(runs):
        left = []
        for k in run["ks"]:
            ran = run.get("methods") or {m for kk, m in present if kk == k}
            mine = {(k, m) for m in ran} & (present - claimed)
            claimed |= mine
            left += [k] if mine else []
        if left:
            kept = {**run, "ks": left}
            if "params" in run:
                kept["params"] = {k: run["params"][k] for k in left}
            shown.append(kept)
    return shown[::-1]


def _methods_note(run: dict) -> str:
    return f" (methods {', '.join(run['methods'])})" if run.get("methods") else ""


def _report_code(folder: Path) -> str:
    """Which code made a published report (its first lines say), since a report can outlive the rows of its k."""
    md = folder / "report.md"
    found = re.search(r"code `([^`]+)`", md.read_text(encoding="utf-8")[:2000]) if md.is_file() else None
    return f", made by code {found.group(1)}" if found else ""


def publish(workdir: Path, out: Path) -> None:
    """Add a finished benchmark's results to ``out`` (a reports/ folder) with a README saying what ran.

    The (k, method) rows this run covers replace theirs in ``out``; rows published before stay, each with the
    code version and params it ran with (``runs.json``, ``params/``): the grid takes more than one CPU session,
    and a later run may add or redo some methods at a k. A run covering every method published at a k writes
    ``params/k<k>.yaml``; one covering only some writes ``params/k<k>-<its methods>.yaml`` beside it."""
    import shutil

    from syndgan.classify.scarcity import figure, k_order, markdown, summarize, verdict_lines

    params = load_params(workdir / "params.yaml")
    sc, c = params.scarcity, params.classify
    ks = [str(k) for k in sc.ks]
    runs = _json_list(workdir / "runs.json")
    if not runs:
        raise DataError(workdir / "runs.json", "not found: the benchmark has not finished here")
    # resumed runs of the same code add up; cells of earlier code were re-run by DVC, so the last code is what ran
    same = [r for r in runs if r["code"] == runs[-1]["code"] and set(r["ks"]) & set(ks)]
    this_run = {"ks": ks, "code": runs[-1]["code"], "minutes": round(sum(r["minutes"] for r in same), 1),
                "cells": runs[-1]["cells"]}  # fmt: skip
    report_srcs = {k: workdir / k_dir(k) / params.report.out for k in map(str, sc.report_ks)}
    for k, src in report_srcs.items():  # before anything in ``out`` is replaced
        for part in (src / "figures", src / "report.md", src / "report.html"):
            if not part.exists():
                raise DataError(part, f"not found: k = {k}'s report has not run here")
    out.mkdir(parents=True, exist_ok=True)
    covered = {(k, m) for k in ks for m in c.methods}
    before = _json_list(out / "scarcity.json")
    records = [r for r in before if (str(r["k"]), r["method"]) not in covered]
    records += read_json(workdir / sc.records, hint="the benchmark's aggregate stage has not run")
    # methods in the published order, new ones after them, the baseline first
    rank = {m: i for i, m in enumerate(dict.fromkeys(["none", *(r["method"] for r in before), *c.methods]))}
    records.sort(key=lambda r: (k_order(r["k"]), rank[r["method"]]))  # stable: seeds keep their order
    whole = {k: {r["method"] for r in records if str(r["k"]) == k} <= set(c.methods) for k in ks}
    this_run["methods"] = list(c.methods)
    this_run["params"] = {k: f"params/{k_dir(k) if whole[k] else '-'.join([k_dir(k), *c.methods])}.yaml" for k in ks}
    history = _still_shown([*_json_list(out / "runs.json"), this_run], records)
    (out / "params").mkdir(exist_ok=True)
    for k in ks:
        shutil.copyfile(workdir / k_dir(k) / "params.yaml", out / this_run["params"][k])
    named = {f for r in history for f in _params_files(r)}
    for f in (out / "params").glob("*.yaml"):  # params of runs whose rows are all gone
        if f"params/{f.name}" not in named:
            f.unlink()
    for k, src in report_srcs.items():  # src also holds classify's runs (models): the report only
        with atomic_dir(out / f"report-{k_dir(k)}") as tmp:  # the published one stays if a copy fails
            shutil.copytree(src / "figures", tmp / "figures")
            for name in ("report.md", "report.html"):
                shutil.copyfile(src / name, tmp / name)
    summary = summarize(records)
    verdicts = {
        **(read_json(out / sc.verdicts, required=False) or {}),
        **(read_json(workdir / sc.verdicts, required=False) or {}),
    }
    verdicts = {key: verdicts[key] for key in summary if key in verdicts}  # in k order
    atomic_write_json(out / sc.verdicts, verdicts)
    atomic_write_json(out / "scarcity.json", records)
    atomic_write_json(out / "runs.json", history)
    figure(summary, out / "scarcity.png", sc.dataset)
    reports = sorted(out.glob("report-k*"))  # this run's and those published before
    lines = [
        f"# Scarcity benchmark: {sc.dataset}",
        "",
        "For every k, the whole pipeline ran with k_shot = k (pretrain, train_synth and augment learn from the k",
        "kept images only); classify ran every method x seed x dose and chose each method's dose on val macro-F1",
        "(test read once). Records: `scarcity.json` (one per k, method, seed at the chosen dose; rates in %).",
        f"Last run: methods {c.methods}, seeds {c.seeds}, doses {c.doses}. The exact params of each run below are in"
        " `params/` (`k<k>-<methods>.yaml`: a run that redid or added only those methods at k).",
        "",
        markdown(summary, sc.dataset),
        "What to do with k defect images per class (the method chosen on val against `none`, with the noise of"
        " the seeds and of the test set: `verdicts.json`; a k without a line ran before verdicts were kept):",
        "",
        *verdict_lines(verdicts),
        "",
        "![macro-F1 against k](scarcity.png)",
        "",
        "What ran (2 CPU cores; wall time of the benchmark invocations with that code):",
        "",
        *(
            f"- k {', '.join(r['ks'])}{_methods_note(r)}: code {r['code']}, {r['minutes']} min for {r['cells']} cells; "
            + ", ".join(f"`{f}`" for f in _params_files(r))
            for r in history
        ),
        *(
            f"- k {d.name[len('report-k') :]}: the full report (evaluate, report) is in `{d.name}/report.html`"
            + _report_code(d)
            for d in reports
        ),
        "",
    ]
    atomic_write_text(out / "README.md", "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.scarcity", description=__doc__.split("\n")[0])
    ap.add_argument("--params", type=Path, nargs="+", default=[Path("data/configs/scarcity-demo.yaml")])
    ap.add_argument("--workdir", type=Path, default=None, help="default: runs/scarcity-<scarcity.dataset>")
    ap.add_argument("--ks", nargs="+", default=None, help="run these k only (integers or all)")
    ap.add_argument("--aggregate", action="store_true", help="the benchmark project's own stage (in its folder)")
    ap.add_argument("--publish", type=Path, default=None, help="copy the finished results of --workdir here")
    args = ap.parse_args(argv)
    try:
        if args.aggregate:
            aggregate(load_params("params.yaml"))
            return 0
        files = [f.resolve() for f in args.params]
        workdir = args.workdir or Path("runs") / f"scarcity-{parse_params(merged_params(files)).scarcity.dataset}"
        if args.publish is not None:
            publish(workdir.resolve(), args.publish)
            return 0
        ks = None if args.ks is None else [k if k == "all" else int(k) for k in args.ks]
        return run_benchmark(files, workdir.resolve(), ks=ks)
    except (ConfigError, DataError) as e:
        print(f"scarcity: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
