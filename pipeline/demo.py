"""Stage `demo`: generate the built-in insert-like demo dataset into ``demo.out`` (LabelMe JSON + PNG)."""

from __future__ import annotations

import logging

from pipeline.common import stage_main
from pipeline.config import Params
from syndgan.data.demo import generate_demo
from syndgan.io import atomic_dir

log = logging.getLogger("syndgan.demo")


def run(params: Params) -> dict:
    cfg = params.demo
    out = params.resolve(cfg.out)
    if params.ingest.sources:
        # Your own data is configured: the demo is not needed; leave a note instead of its images.
        with atomic_dir(out) as tmp:
            (tmp / "NOT_GENERATED.txt").write_text("ingest.sources is set in params.yaml; the demo is not used.\n")
        log.info("ingest.sources configured: demo dataset not generated")
        return {"images": 0}
    with atomic_dir(out) as tmp:  # a killed run never leaves half a dataset behind
        summary = generate_demo(tmp, cfg, progress=True)
    log.info("wrote %d images of %d parts to %s: %s", summary["images"], summary["parts"], out, summary["counts"])
    return summary


def main(argv: list[str] | None = None) -> int:
    return stage_main("demo", run, argv, __doc__, outputs=lambda p: [p.demo.out])


if __name__ == "__main__":
    raise SystemExit(main())
