"""`make bench` part: defect studio latency, one synthesis request end to end (drawing -> label map ->
network -> blend), CPU, one torch thread by default.

    python -m pipeline.experiments.bench_studio [--checkpoint models/train_synth/synthesizer.pt] [--repeat 5] [--threads 1]

Cases: a 128 px image with a 128 px network (resize mode) and a 1024 px image in patch mode (128 px
windows), with one defect and with four far-apart defects (four windows). Without a trained
checkpoint the project's architecture (params.yaml pretrain + train_synth) is built with random
weights: latency does not depend on the weights. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _checkpoint(params, folder: Path, mode: str) -> Path:
    """A synthesizer.pt of the project's architecture at 128 px, random weights."""
    import torch

    from pipeline.config import library_settings
    from pipeline.rasterize import class_table
    from syndgan.models.generators import create_generator, generator_spec
    from syndgan.training.synth import build_network, save_synthesizer

    torch.manual_seed(0)
    classes = class_table(params)
    ps = library_settings(params.pretrain, resolution=128, channels=3)
    G = create_generator(ps.generator, **ps.generator_kwargs())
    s = library_settings(params.train_synth)
    network = build_network(G, classes, s)
    data = {"mode": mode, "patch_size": 128} if mode == "patch" else {"mode": "resize"}
    pre = {"generator": generator_spec(ps.generator, **ps.generator_kwargs())}
    return save_synthesizer(folder / f"{mode}.pt", network.eval(), pre, s, classes, data, {"steps": 0})


def _square(cx: float, cy: float, r: float) -> dict:
    return {"tool": "polygon", "points": [[cx - r, cy - r], [cx + r, cy - r], [cx + r, cy + r], [cx - r, cy + r]]}


def run(params, checkpoint: Path | None, repeat: int) -> list[dict]:
    from PIL import Image

    from pipeline.rasterize import class_table
    from syndgan.studio import ImageStore, Studio
    from syndgan.studio.images import png_bytes

    classes = class_table(params)
    cls = classes[0]["name"]
    rng = np.random.default_rng(0)
    cases = [
        (128, "resize", [_square(64, 64, 6)]),
        (1024, "patch", [_square(500, 420, 3)]),
        (1024, "patch", [_square(x, y, 8) for x in (200, 800) for y in (200, 800)]),
    ]
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-studio-") as tmp:
        ckpts = {}
        for size, mode, ops in cases:
            if mode not in ckpts:
                ckpts[mode] = checkpoint or _checkpoint(params, Path(tmp), mode)
            store = ImageStore(None, [], max_pixels=params.ingest.max_pixels)
            small = rng.integers(40, 200, (size // 16, size // 16, 3), dtype=np.uint8)
            img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
            src = store.add_upload(png_bytes(img), "bench.png")
            studio = Studio(classes, {mode: ckpts[mode]}, store, Path(tmp) / "out", device="cpu")
            req = {"image": src.ref, "ops": [{**op, "class": cls} for op in ops]}
            studio.synthesize(req)  # warm-up: load, first-call allocations
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                studio.synthesize(req)
                times.append((time.perf_counter() - t0) * 1000)
            net = studio.synthesizer(None).synth
            out.append(
                {
                    "case": f"{size} px, {len(ops)} defect{'s' if len(ops) > 1 else ''}",
                    "mode": net.mode,
                    "network_px": net.resolution,
                    "median_ms": statistics.median(times),
                    "min_ms": min(times),
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    import torch

    from pipeline.config import load_user_params

    ap = argparse.ArgumentParser(prog="python -m pipeline.experiments.bench_studio", description=__doc__.split("\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--checkpoint", type=Path, default=None, help="a trained synthesizer.pt (default: random weights)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = run(load_user_params(args.params), args.checkpoint, args.repeat)
    print(f"{'case':<28} {'mode':>6} {'net px':>6} {'median ms':>10} {'min ms':>8}   (threads {args.threads})")
    for r in rows:
        print(f"{r['case']:<28} {r['mode']:>6} {r['network_px']:>6} {r['median_ms']:>10.1f} {r['min_ms']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
