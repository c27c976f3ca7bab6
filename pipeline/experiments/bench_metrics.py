"""`make bench` part: metric feature-extraction throughput (images/s), CPU by default.

    python -m pipeline.experiments.bench_metrics [--n 64] [--res 128] [--batch 32] [--threads N] [--device cpu]

Measures the FID/KID extractors (``effnet``; ``inception`` when its weights are on this machine), the
perceptual networks (``perceptual_effnet``; ``lpips_vgg`` when available) and the FID statistics step.
Random structured uint8 images: this measures compute only. Printed, not asserted.
"""

from __future__ import annotations

import argparse
import time


def _images(n: int, res: int, channels: int = 1):
    import torch

    g = torch.Generator().manual_seed(0)
    base = torch.rand(n, channels, res // 8, res // 8, generator=g)
    img = torch.nn.functional.interpolate(base, size=(res, res), mode="bilinear", align_corners=False)
    return (img * 255).to(torch.uint8)


def _rate(fn, n: int) -> float:
    fn()  # warm-up: weights in cache, kernels selected
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def run(n: int = 64, res: int = 128, batch: int = 32, device: str = "cpu") -> dict[str, float]:
    """{what: images/s} (and the FID statistics time in seconds) for every network available here."""
    from syndgan.metrics import (
        extract_features,
        fid_from_features,
        inception_unavailable_reason,
        vgg_unavailable_reason,
    )
    from syndgan.metrics.extractors import cached_extractor
    from syndgan.metrics.perceptual import cached_perceptual, paired_distances

    images = _images(n, res)
    out: dict[str, float] = {}
    extractors = ["effnet"] + (["inception"] if inception_unavailable_reason() is None else [])
    for kind in extractors:
        net = cached_extractor(kind, device)
        out[f"extract_{kind}"] = _rate(
            lambda net=net: extract_features(images, net, batch_size=batch, device=device), n
        )
        if kind == "effnet":
            feats = extract_features(images, net, batch_size=batch, device=device)
            t0 = time.perf_counter()
            fid_from_features(feats, feats.flip(0) + 0.01)
            out["fid_statistics_s"] = time.perf_counter() - t0
    kinds = ["effnet"] + (["vgg"] if vgg_unavailable_reason() is None else [])
    for kind in kinds:
        dist = cached_perceptual(kind, device)
        # a pair costs two images through the network
        out[dist.name] = _rate(
            lambda d=dist: paired_distances(images, images.flip(0), d, batch_size=batch, device=device), 2 * n
        )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m pipeline.experiments.bench_metrics", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--n", type=int, default=64, help="images per measurement")
    ap.add_argument("--res", type=int, default=128, help="input resolution (the effnet extractor resizes to 224)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"metrics bench: {args.n} images {args.res}px, batch {args.batch}, device {args.device}, "
        f"{torch.get_num_threads()} CPU threads",
        flush=True,
    )
    for key, value in run(args.n, args.res, args.batch, args.device).items():
        if key.endswith("_s"):
            print(f"  {key:32s} {value:8.2f} s", flush=True)
        else:
            print(f"  {key:32s} {value:8.1f} images/s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
