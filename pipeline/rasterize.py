"""Stage `rasterize`: manifest + annotations -> working-resolution images, colour maps and label maps.

Writes ``<rasterize.out>/{images,colormaps,labelmaps}/<stem>.png``, ``index.parquet`` and
``dataset.json`` (resolution, channels, classes with ids and colours, counts).
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from PIL import Image
from tqdm import tqdm

from pipeline.common import stage_main
from pipeline.config import Params
from syndgan.data.processed import INDEX_COLUMNS
from syndgan.data.rasterize import Region, colorize, rasterize_labelmap, resize_image
from syndgan.errors import ImageError
from syndgan.io import atomic_dir, atomic_write_json

log = logging.getLogger("syndgan.rasterize")


def stem_of(image_id: str) -> str:
    return image_id.replace("/", "__")


def class_table(params: Params) -> list[dict]:
    return [{"name": n, "id": i + 1, "color": list(c)} for i, (n, c) in enumerate(params.ingest.classes.items())]


def _one(job: tuple) -> None:
    row, regions, size, mode, palette, out, coverage = job
    stem = stem_of(row["id"])
    try:
        with Image.open(row["path"]) as im:
            img = im.convert(mode)
    except OSError as e:
        raise ImageError(row["path"], f"cannot read image: {e}") from None
    resize_image(img, size).save(out / "images" / f"{stem}.png")
    labels = rasterize_labelmap(regions, int(row["width"]), int(row["height"]), size, coverage)
    Image.fromarray(labels, "L").save(out / "labelmaps" / f"{stem}.png")
    Image.fromarray(colorize(labels, palette), "RGB").save(out / "colormaps" / f"{stem}.png")


def rasterize_dataset(
    manifest: pd.DataFrame,
    annotations: pd.DataFrame,
    classes: list[dict],
    out_dir: Path,
    resolution: int,
    coverage: float = 0.5,
    channels: int = 0,
    workers: int | None = None,
    k_shot: int | None = None,
    k_shot_seed: int = 0,
) -> dict:
    """Rasterize every manifest row into ``out_dir`` (replaced atomically). Returns dataset.json's content.

    ``k_shot``/``k_shot_seed`` decide the train pool (``syndgan.data.processed.train_pool``) for every later
    stage; dataset.json records them, so no stage downstream reads that setting from params.
    """
    ids = {c["name"]: c["id"] for c in classes}
    palette = {c["id"]: c["color"] for c in classes}
    if channels == 0:  # auto: grayscale datasets stay single-channel
        channels = 1 if set(manifest["mode"]) <= {"L"} else 3
    mode = "L" if channels == 1 else "RGB"
    size = (resolution, resolution)
    by_image: dict[str, list[Region]] = {}
    for a in annotations.itertuples(index=False):
        by_image.setdefault(a.image_id, []).append(
            Region(
                class_id=ids[a.label],
                polygon=json.loads(a.points) if a.shape == "polygon" else None,
                mask_path=a.mask_path if a.shape == "mask" else None,
                mask_threshold=int(a.mask_threshold),
            )
        )
    rows = manifest.to_dict("records")
    with atomic_dir(out_dir) as tmp:
        for sub in ("images", "colormaps", "labelmaps"):
            (tmp / sub).mkdir()
        jobs = [(r, by_image.get(r["id"], []), size, mode, palette, tmp, coverage) for r in rows]
        workers = workers or min(4, os.cpu_count() or 1)
        if workers > 1 and len(jobs) > 32:
            with ProcessPoolExecutor(workers) as ex:
                for _ in tqdm(ex.map(_one, jobs, chunksize=16), total=len(jobs), desc="rasterize", unit="img"):
                    pass
        else:
            for j in tqdm(jobs, desc="rasterize", unit="img"):
                _one(j)
        index = pd.DataFrame(
            {
                "id": manifest["id"],
                "label": manifest["label"],
                "labels": manifest["labels"],
                "split": manifest["split"],
                "group": manifest["group"],
                "image": [f"images/{stem_of(i)}.png" for i in manifest["id"]],
                "colormap": [f"colormaps/{stem_of(i)}.png" for i in manifest["id"]],
                "labelmap": [f"labelmaps/{stem_of(i)}.png" for i in manifest["id"]],
            }
        )[list(INDEX_COLUMNS)]  # the contract's columns, in its order (a missing one fails here, not downstream)
        index.to_parquet(tmp / "index.parquet", index=False)
        counts = {
            split: {str(k): int(v) for k, v in g["label"].value_counts().sort_index().items()}
            for split, g in manifest.groupby("split")
        }
        info = {"resolution": resolution, "channels": channels, "classes": classes, "counts": counts}
        info |= {"k_shot": k_shot, "k_shot_seed": k_shot_seed}
        atomic_write_json(tmp / "dataset.json", info)
    return info


def run(params: Params) -> dict:
    interim = params.resolve(params.ingest.out)
    manifest = pd.read_parquet(interim / "manifest.parquet")
    annotations = pd.read_parquet(interim / "annotations.parquet")
    cfg = params.rasterize
    info = rasterize_dataset(
        manifest,
        annotations,
        class_table(params),
        params.resolve(cfg.out),
        cfg.resolution,
        cfg.coverage,
        cfg.channels,
        k_shot=cfg.k_shot,
        k_shot_seed=cfg.k_shot_seed,
    )
    log.info("rasterized %d images at %d px (%d channel(s))", len(manifest), cfg.resolution, info["channels"])
    return info


def main(argv: list[str] | None = None) -> int:
    return stage_main("rasterize", run, argv, __doc__, outputs=lambda p: [p.rasterize.out])


if __name__ == "__main__":
    raise SystemExit(main())
