"""Benchmark: ingest + rasterize throughput (images/s) on Magnetic Tile (1344 images), when present."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from pathlib import Path

from pipeline import ingest, rasterize
from pipeline.config import load_params

ROOT = Path(__file__).resolve().parents[2]
MT_PARAMS = ROOT / "data" / "configs" / "magnetic-tile.yaml"
MT_DATA = ROOT.parent / "shared" / "datasets" / "magnetic-tile"


def main(argv: list[str] | None = None) -> int:
    if not MT_DATA.is_dir():
        print(f"bench data: {MT_DATA} not found; skipped")
        return 0
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("SYNDGAN_ROOT", str(ROOT))
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # outputs of the params file are relative to the working directory
        try:
            params = load_params(MT_PARAMS)
            t0 = time.perf_counter()
            result = ingest.run(params)
            t1 = time.perf_counter()
            rasterize.run(params)
            t2 = time.perf_counter()
        finally:
            os.chdir(cwd)
    n = len(result.manifest)
    res = params.rasterize.resolution
    print(
        f"ingest     {n} images  {t1 - t0:6.2f} s  {n / (t1 - t0):8.1f} images/s  (open, verify, sha256, masks, split)"
    )
    print(
        f"rasterize  {n} images  {t2 - t1:6.2f} s  {n / (t2 - t1):8.1f} images/s  (to {res} px, {os.cpu_count()} cpus)"
    )
    print(f"together   {n} images  {t2 - t0:6.2f} s  {n / (t2 - t0):8.1f} images/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
