"""`make bench` part: augment throughput (images/s) per method, on generated data at a real image size and at the
demo's processed size. CPU, one torch thread by default.

    python -m pipeline.experiments.bench_augment [--sizes 900 128] [--images 24] [--methods ...] [--threads 1]

Data: a processed dataset (``data/processed`` layout) made up here: textured parts on a flat background, the
params' defect classes as blobs on the surface, notches at the part's edge and thin cracks, ``k`` train images
per class (the scarcity setting's 10) and 20 normal train images. 900 px is a real camera-sized gray image (one
channel; augment works at ``rasterize.resolution``, so that is what it sees when that is 900), 128 px the demo's
RGB working resolution.

Methods: ``copy_paste`` with params.yaml's placement (``base``) and with the chosen scarcity variant
(``chosen``: data/configs/scarcity-magnetic-tile-chosen.yaml: elastic, morph, recombine, location prior, up to 2
defects); ``syndgan`` and ``hybrid`` through the trained synthesizer when ``augment.syndgan.checkpoint`` exists,
else through the project's architecture with random weights (latency does not depend on the weights); ``cutmix``
mixes classifier batches at training time (images/s of ``mix_batch``) and ``none`` does nothing. ``setup s`` is
reading the train pool and its foreground estimates (once per run), ``images/s`` the rate after it (wall clock)
and ``cpu s/img`` this process's CPU time per image after it (steadier than the wall clock on a busy machine).
Printed, not asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHOSEN = ROOT / "data" / "configs" / "scarcity-magnetic-tile-chosen.yaml"
METHODS = ("none", "cutmix", "copy_paste", "copy_paste+chosen", "syndgan", "hybrid")


def _smooth_noise(rng: np.random.Generator, size: int, cell: int) -> np.ndarray:
    """Noise in [0, 1] with features of about ``cell`` px (bilinear upsampling of a coarse grid)."""
    from PIL import Image

    n = max(2, size // cell)
    coarse = rng.random((n, n)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse, "F").resize((size, size), Image.Resampling.BILINEAR))


def _part(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(gray float image, bool object mask): a textured rounded part on a flat background."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    cy, cx = rng.uniform(0.45, 0.55, 2)
    ry, rx = rng.uniform(0.3, 0.42, 2)
    obj = ((yy - cy) / ry) ** 4 + ((xx - cx) / rx) ** 4 <= 1.0
    surface = 90 + 60 * _smooth_noise(rng, size, max(4, size // 6)) + rng.normal(0, 14, (size, size))
    img = np.where(obj, surface, 40 + rng.normal(0, 0.5, (size, size)))
    return img.astype(np.float32), obj


def _defect(rng: np.random.Generator, kind: int, obj: np.ndarray) -> np.ndarray:
    """One defect mask on ``obj``: 0 a blob on the surface, 1 a notch at the edge, 2 a thin crack."""
    size = obj.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    inside = np.argwhere(obj)
    if kind == 1:  # centred on an object boundary pixel: half on the part, half off it
        edge = obj & ~np.roll(obj, 1, 0) | obj & ~np.roll(obj, 1, 1)
        inside = np.argwhere(edge)
    p = inside[int(rng.integers(len(inside)))]
    if kind == 2:
        angle, length = rng.uniform(0, math.pi), rng.uniform(0.05, 0.15) * size
        t = np.linspace(-0.5, 0.5, 200)[:, None]
        pts = p + t * length * np.array([math.sin(angle), math.cos(angle)]) + rng.normal(0, 0.3, (200, 2)).cumsum(0)
        pts = np.clip(np.rint(pts).astype(int), 0, size - 1)
        mask = np.zeros((size, size), bool)
        mask[pts[:, 0], pts[:, 1]] = True
        from scipy import ndimage

        return ndimage.binary_dilation(mask, iterations=max(1, size // 400)) & obj
    ry, rx = rng.uniform(0.01, 0.04, 2) * size
    mask = ((yy - p[0]) / ry) ** 2 + ((xx - p[1]) / rx) ** 2 <= 1.0
    return mask if kind == 1 else mask & obj


def make_dataset(root: Path, size: int, channels: int, classes: list[dict], k: int = 10, normals: int = 20) -> Path:
    """A processed dataset (index.parquet, dataset.json, images, colormaps, labelmaps) of train images only."""
    import pandas as pd
    from PIL import Image

    rng = np.random.default_rng(size)
    for sub in ("images", "colormaps", "labelmaps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    mode = "L" if channels == 1 else "RGB"
    rows = []
    todo = [("normal", 0)] * normals + [(c["name"], c["id"]) for c in classes for _ in range(k)]
    for i, (label, cid) in enumerate(todo):
        img, obj = _part(rng, size)
        labels = np.zeros((size, size), np.uint8)
        for _ in range(int(rng.integers(1, 3)) if cid else 0):
            m = _defect(rng, (cid - 1) % 3, obj)
            labels[m] = cid
            img[m] = img[m] * 0.5 + (200 if cid % 2 else 15) * 0.5
        if cid and not labels.any():  # a notch may miss a thin part: keep one pixel
            labels[tuple(np.argwhere(obj)[0])] = cid
        pixels = np.clip(np.rint(img), 0, 255).astype(np.uint8)
        if channels == 3:
            pixels = np.stack([pixels, np.clip(pixels * 0.9 + 10, 0, 255).astype(np.uint8), pixels], axis=-1)
        stem = f"bench__{label}_{i:03d}"
        cmap = np.zeros((size, size, 3), np.uint8)
        for c in classes:
            cmap[labels == c["id"]] = c["color"]
        Image.fromarray(pixels, mode).save(root / "images" / f"{stem}.png", compress_level=1)
        Image.fromarray(labels, "L").save(root / "labelmaps" / f"{stem}.png")
        Image.fromarray(cmap, "RGB").save(root / "colormaps" / f"{stem}.png")
        rows.append(
            {
                "id": f"bench/{label}_{i:03d}",
                "label": label,
                "labels": "" if label == "normal" else label,
                "split": "train",
                "group": f"{label}_{i:03d}",
                "image": f"images/{stem}.png",
                "colormap": f"colormaps/{stem}.png",
                "labelmap": f"labelmaps/{stem}.png",
            }
        )
    pd.DataFrame(rows).to_parquet(root / "index.parquet", index=False)
    info = {"resolution": size, "channels": channels, "classes": classes, "counts": {}}
    (root / "dataset.json").write_text(json.dumps(info, indent=2))
    return root


def chosen_placement(params):
    """params.yaml's augment.placement with the chosen scarcity variant's overrides."""
    import yaml

    from pipeline.config import parse_params

    raw = yaml.safe_load(CHOSEN.read_text())["augment"]["placement"]
    merged = parse_params({"augment": {"placement": {**_placement_dict(params), **raw}}})
    return merged.augment.placement


def _placement_dict(params) -> dict:
    return dataclasses.asdict(params.augment.placement)


def _setup_seconds(dataset, pool, placement) -> tuple[float, float]:
    """What generate_augmented does once per run: the train normals and every class's sources, with foregrounds."""
    from syndgan.augment.generate import _Target, load_sources
    from syndgan.data.processed import NORMAL

    t0, c0 = time.perf_counter(), time.process_time()
    for r in pool[pool["label"] == NORMAL].itertuples(index=False):
        _Target(r, dataset, placement)
    for name in dataset.class_names:
        load_sources(dataset, pool, name, placement)
    return time.perf_counter() - t0, time.process_time() - c0  # (wall, cpu)


def _synth_checkpoint(params, folder: Path, size: int) -> tuple[str, str]:
    from pipeline import methods

    path = Path(methods.options(params, "syndgan")["checkpoint"])
    if path.is_file():
        return str(path), "trained network"
    from pipeline.experiments.bench_studio import _checkpoint

    mode = "patch" if size > 256 else "resize"  # a real-size image is painted in windows, as the studio does
    return str(_checkpoint(params, folder, mode)), f"random weights ({mode} mode): no {path.name}"


def bench_size(params, size: int, channels: int, n_images: int, methods, tmp: Path) -> list[dict]:
    from pipeline.rasterize import class_table
    from syndgan.augment import create_method, generate_augmented
    from syndgan.data.processed import ProcessedDataset, train_pool
    from syndgan.errors import SyndganError

    classes = class_table(params)
    t0 = time.perf_counter()
    dataset = ProcessedDataset.load(make_dataset(tmp / f"data{size}", size, channels, classes))
    print(f"  {size} px data ({channels} channel(s)) made in {time.perf_counter() - t0:.1f} s", flush=True)
    pool = train_pool(dataset)
    per_class = max(1, math.ceil(n_images / len(classes)))
    targets = {c["name"]: per_class for c in classes}
    n = per_class * len(classes)
    base, chosen = params.augment.placement, chosen_placement(params)
    rows = []
    for name in methods:
        row = {"size": size, "method": name, "images": n, "setup_s": 0.0, "cpu_s": float("nan"), "note": ""}
        if name == "none":
            rows.append({**row, "images": 0, "rate": float("nan"), "note": "adds nothing"})
            continue
        if name == "cutmix":
            rows.append({**row, **_cutmix_rate(params, size, channels)})
            continue
        placement = chosen if name.endswith("+chosen") else base
        method_name = name.split("+")[0]
        options = methods_options(params, method_name)
        if method_name in ("syndgan", "hybrid"):
            options["checkpoint"], row["note"] = _synth_checkpoint(params, tmp, size)
            options["device"] = "cpu"
        method = create_method(method_name, **options)
        setup, setup_cpu = _setup_seconds(dataset, pool, placement)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            generate_augmented(
                dataset, method, targets, tmp / f"out{size}-{name}", pool, placement, params.augment.seed
            )
        except SyndganError as e:  # e.g. no valid placement on this made-up data: say so, go on
            rows.append({**row, "rate": float("nan"), "note": f"failed: {e}"[:120]})
            continue
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        rate = n / max(total - setup, 1e-9)
        rows.append({**row, "setup_s": setup, "total_s": total, "cpu_s": (cpu - setup_cpu) / n, "rate": rate})
        print(f"  {size} px {name:<18} {rate:7.2f} images/s  ({n} images, {total:.1f} s)", flush=True)
    return rows


def methods_options(params, name: str) -> dict:
    """The method's options from params (``augment.<name>``), as the augment stage passes them."""
    from pipeline import methods

    return methods.options(params, name)


def _cutmix_rate(params, size: int, channels: int) -> dict:
    """``mix_batch`` on batches of 32 images at ``size`` (prob 1: every batch mixed)."""
    import torch

    from syndgan.augment import create_method

    m = create_method("cutmix", **{**methods_options(params, "cutmix"), "prob": 1.0})
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, channels, size, size, generator=g)
    y = torch.nn.functional.one_hot(torch.arange(32) % 4, 4).float()
    m.mix_batch(x, y, g)
    t0 = time.perf_counter()
    reps = 5
    for _ in range(reps):
        m.mix_batch(x, y, g)
    return {"images": 32 * reps, "rate": 32 * reps / (time.perf_counter() - t0), "note": "mix_batch, batch 32"}


def main(argv: list[str] | None = None) -> int:
    import logging

    import torch

    from pipeline.config import load_user_params

    ap = argparse.ArgumentParser(
        prog="python -m pipeline.experiments.bench_augment", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--sizes", type=int, nargs="+", default=[900, 128], help="image sizes (px); 900 gray, else RGB")
    ap.add_argument("--images", type=int, default=24, help="synthetic images per method and size")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    params = load_user_params(args.params)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-augment-") as tmp:
        for size in args.sizes:
            rows += bench_size(params, size, 1 if size > 256 else 3, args.images, args.methods, Path(tmp))
    print(
        f"\n{'size':>5} {'method':<18} {'images/s':>9} {'cpu s/img':>9} {'images':>7} {'setup s':>8}"
        f"   (torch threads {args.threads}, {os.cpu_count()} cpus)"
    )
    for r in rows:
        rate = "-" if math.isnan(r["rate"]) else f"{r['rate']:.2f}"
        cpu = "-" if math.isnan(r["cpu_s"]) else f"{r['cpu_s']:.3f}"
        print(
            f"{r['size']:>5} {r['method']:<18} {rate:>9} {cpu:>9} {r['images']:>7} {r['setup_s']:>8.1f}   {r['note']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
