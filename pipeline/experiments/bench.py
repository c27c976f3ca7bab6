"""`make bench`: throughput numbers printed, not asserted. Runs every benchmark module in turn.

python -m pipeline.experiments.bench [--only data pretrain metrics studio augment]
"""

from __future__ import annotations

import argparse
import importlib
import time

BENCHES = {
    "data": "pipeline.experiments.bench_data",  # ingest + rasterize on Magnetic Tile
    "pretrain": "pipeline.experiments.bench_pretrain",  # G + D training images/s at 64/128/256 px, both generators
    "metrics": "pipeline.experiments.bench_metrics",  # feature extraction images/s
    "studio": "pipeline.experiments.bench_studio",  # defect studio: one synthesis at 128 px and at 1024 px (patch mode)
    "augment": "pipeline.experiments.bench_augment",  # images/s per augment method on made-up 900 px and 128 px data
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.bench", description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=None)
    args = ap.parse_args(argv)
    rc = 0
    for name, module in BENCHES.items():
        if args.only and name not in args.only:
            continue
        print(f"\n=== bench {name} ({module})", flush=True)
        t0 = time.time()
        rc |= int(importlib.import_module(module).main([]) or 0)
        print(f"=== bench {name} done in {time.time() - t0:.1f} s", flush=True)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
