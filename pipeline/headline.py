"""Stage `headline`: the few numbers a person compares, as small DVC metrics files.

    python -m pipeline.headline [--params params.yaml]

Writes ``<headline.out>/<row>.json``, one flat file per method or evaluated set (``none``, ``cutmix``,
``copy_paste``, ``syndgan``, ``real_train``, ``syndgan_<ablation>``), read from ``classify.metrics``,
``evaluate.metrics`` and ``pretrain.metrics``. ``dvc metrics show`` prints them as one table, a row per
file; the detailed files stay plain outputs of their stages. Classification columns are percent, mean and
std over ``classify.seeds`` at the dose chosen on val (``dose``); ``fid`` / ``kid_x1e3``: pooled over the
defect classes against the real test defects; ``recon_l1`` / ``recon_perc``: defect reconstruction;
``gan_fid``: the pretrained generator's last FID.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pipeline.common import read_json, stage_main
from pipeline.config import Params
from syndgan.errors import DataError
from syndgan.headline import headline_rows
from syndgan.io import atomic_dir

log = logging.getLogger("syndgan.headline")


def _read(path: Path) -> dict | None:
    """A stage's detailed metrics, or None when that stage has not written them (its columns stay empty)."""
    doc = read_json(path, required=False)
    if doc is None:
        log.info("%s not found: its columns are left out", path)
    return doc


def run(params: Params) -> dict[str, dict]:
    sources = (params.classify.metrics, params.evaluate.metrics, params.pretrain.metrics)
    rows = headline_rows(*(_read(params.resolve(p)) for p in sources))
    if not rows:
        missing = "no headline metrics in it (nor in evaluate's or pretrain's): run those stages first"
        raise DataError(params.resolve(params.classify.metrics), missing)
    with atomic_dir(params.resolve(params.headline.out)) as tmp:  # rows of removed methods go with the old folder
        for name, values in rows.items():
            (tmp / f"{name}.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    log.info("%d headline rows in %s: %s", len(rows), params.headline.out, ", ".join(rows))
    return rows


def outputs(params: Params) -> list[str]:
    return [params.headline.out]


def main(argv: list[str] | None = None) -> int:
    return stage_main("headline", run, argv, __doc__, outputs=outputs)


if __name__ == "__main__":
    raise SystemExit(main())
