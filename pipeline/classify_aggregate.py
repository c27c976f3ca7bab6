"""Stage `classify_aggregate`: mean +- std over ``classify.seeds`` per method and dose.

Reads ``<classify.out>/<method>-s<seed>/metrics.json`` for the configured methods and seeds and writes
``classify.metrics`` (DVC metrics, JSON) and ``<classify.table>.md`` / ``.csv`` (the comparison table).
"""

from __future__ import annotations

import logging

import pandas as pd

from pipeline.classify import run_name
from pipeline.common import read_json, stage_main
from pipeline.config import Params
from syndgan.classify import aggregate_runs, markdown_table, table_rows
from syndgan.classify.aggregate import select_dose_on_val
from syndgan.classify.verdict import sentence, verdict
from syndgan.errors import DataError
from syndgan.io import atomic_write_json, atomic_write_text

log = logging.getLogger("syndgan.classify")


def collect_runs(params: Params) -> list[dict]:
    c = params.classify
    wanted = {key for key, _, _ in c.runs_of(True)} | {"0"}  # "0": training-time methods add no images
    runs = []
    for method in c.methods:
        for seed in c.seeds:
            path = params.resolve(c.out) / run_name(method, seed) / "metrics.json"
            doc = read_json(path, hint=f"run `dvc repro classify@{method}-{seed}` first")
            for dose, m in doc["doses"].items():
                if dose in wanted:
                    runs.append({"method": method, "seed": seed, "dose": dose, **m})
    return runs


def test_predictions(params: Params, method: str, dose: str, classes: list[str]) -> list[tuple[list, list]]:
    """(actual, predicted) class ids of each seed's test images at ``dose``, in one image order for all runs."""
    c = params.classify
    out = []
    for seed in c.seeds:
        path = params.resolve(c.plots) / run_name(method, seed) / f"dose-{dose}.csv"
        try:
            rows = pd.read_csv(path).sort_values("id")
        except (OSError, ValueError) as e:
            raise DataError(path, f"cannot read the test predictions: {e}") from None
        ids = {name: i for i, name in enumerate(classes)}
        out.append(([ids[a] for a in rows["actual"]], [ids[p] for p in rows["predicted"]]))
    return out


def judge(params: Params, agg: dict, classes: list[str]) -> dict:
    """The verdict over the methods' doses chosen on val (``syndgan.classify.verdict``)."""
    chosen = {m: {**next(s for s in doses.values() if s["selected"]), "dose": select_dose_on_val(doses)}
              for m, doses in agg.items()}  # fmt: skip
    preds = {m: test_predictions(params, m, s["dose"], classes) for m, s in chosen.items()}
    return verdict(chosen, preds, len(classes))


def run(params: Params) -> dict:
    c = params.classify
    runs = collect_runs(params)
    agg = aggregate_runs(runs)
    k = f", k_shot={params.rasterize.k_shot}" if params.rasterize.k_shot is not None else ""
    title = f"Test classification (% , mean ± std over seeds {c.seeds}{k})"
    judged = judge(params, agg, runs[0]["classes"])
    table = f"{markdown_table(agg, title)}\n{sentence(judged)}\n"
    atomic_write_json(params.resolve(c.metrics), agg)
    atomic_write_json(params.resolve(c.verdict), {**judged, "sentence": sentence(judged)})
    stem = str(params.resolve(c.table))
    atomic_write_text(f"{stem}.md", table)
    atomic_write_text(f"{stem}.csv", pd.DataFrame(table_rows(agg)).to_csv(index=False))
    log.info("\n%s", table)
    return agg


def outputs(params: Params) -> list[str]:
    c = params.classify
    return [c.metrics, c.verdict, f"{c.table}.md", f"{c.table}.csv"]


def main(argv: list[str] | None = None) -> int:
    return stage_main("classify_aggregate", run, argv, __doc__, outputs=outputs)


if __name__ == "__main__":
    raise SystemExit(main())
