"""Generate a class-balanced synthetic set with one method: pair train normals with real train defect
masks, place the masks, render, write images + label maps, and return the provenance manifest
(``AUGMENTED_COLUMNS``); ``check_provenance`` proves every image derives from the train pool only.

Pairing and placement depend only on (seed, class, image number), never on the method, so image
``k`` of class ``c`` has the same normal image, mask source and transform for ``copy_paste``,
``syndgan`` or any other method: methods differ only in how the defect pixels are rendered.
Normal images are used round-robin (in a per-class shuffled order); the mask source of each image is
drawn among the ``appearance_top_k`` train defects that look most like that normal image (same
illumination / exposure), so a dark-field defect is not pasted onto a bright-field part.

Unpaired methods (``paired`` False: the generation-only GAN) sample whole images instead: image ``k`` of class
``c`` comes from a seed of (seed, class, k) alone. Such an image has no placed mask, so where its defect is is
unknown: its label map is all 0 and ``transform`` is ``[]`` (the classifier reads only ``label``). Its
``normal_source`` and ``mask_source`` list every image it derives from (the method's ``sources``: for the
generation-only GAN, the pretraining's normal images and the class's fine-tuning images).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syndgan.augment.base import AugmentMethod
from syndgan.augment.deform import recombine
from syndgan.augment.foreground import foreground_mask
from syndgan.augment.location import class_distances
from syndgan.augment.placement import (
    DefectSource,
    PlacementSettings,
    Surface,
    appearance,
    compose_labelmap,
    nearest_sources,
    place_defect,
)
from syndgan.data.processed import NORMAL, ProcessedDataset, has_class
from syndgan.errors import DataError, SyndganError

log = logging.getLogger("syndgan.augment")

# augment's manifest.csv/parquet: the processed index's columns an image needs, plus where it came from.
AUGMENTED_COLUMNS = {
    "id": "str",
    "label": "str",
    "labels": "str",
    "split": "str",
    "group": "str",
    "image": "str",
    "labelmap": "str",
    "normal_source": "str",  # "|"-joined for unpaired methods (every normal image the generator learned from)
    "mask_source": "str",  # "|"-joined when several defects were composed (unpaired: the class's training images)
    "method": "str",
    "seed": "int64",
    "rank": "int64",  # position within its class: a dose of n takes ranks 0..n-1
    "transform": "str",  # JSON list, one placement record per defect
}
MAX_NORMAL_ATTEMPTS = 20  # normal images tried for one synthetic image before giving up


class _Target:
    """A train normal image with what placement needs, computed once."""

    def __init__(self, row, dataset: ProcessedDataset, s: PlacementSettings):
        self.id, self.group = row.id, row.group
        self.image = dataset.read_image(row.image)
        self.fg = foreground_mask(self.image, s.fg_window, s.fg_separability)
        self.surface = Surface(self.fg)  # edges, object pixels...: once per image, not per defect placed on it
        self.appearance = appearance(self.image, self.fg)


def load_sources(dataset: ProcessedDataset, pool: pd.DataFrame, name: str, s: PlacementSettings) -> list[DefectSource]:
    """Every pool image containing class ``name``, with that class's mask and the image's foreground."""
    cid = dataset.class_ids[name]
    out = []
    for row in pool.sort_values("id").itertuples(index=False):
        if not has_class(row.labels, name):
            continue
        mask = dataset.read_labelmap(row.labelmap) == cid
        if not mask.any():  # the class was annotated but vanished at this resolution: nothing to take
            log.warning("%s: no %r pixels in its label map; not used as a mask source", row.id, name)
            continue
        image = dataset.read_image(row.image)
        out.append(DefectSource(row.id, cid, image, mask, foreground_mask(image, s.fg_window, s.fg_separability)))
    return out


def generate_augmented(
    dataset: ProcessedDataset,
    method: AugmentMethod,
    targets: Mapping[str, int],
    out_dir: str | Path,
    pool: pd.DataFrame,
    settings: PlacementSettings | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Write ``targets[c]`` synthetic images per class into ``out_dir/{images,labelmaps}``; return the manifest.

    ``pool``: the images that may be used (train split, after k-shot); nothing else is ever read.
    """
    s = settings or PlacementSettings()
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "labelmaps").mkdir(parents=True, exist_ok=True)
    index_path = dataset.root / "index.parquet"
    if not method.produces_images:
        raise SyndganError(f"augmentation method {method.name!r} works at training time and renders no images")
    if not method.paired:
        return sample_unpaired(dataset, method, targets, out, seed, progress)
    total = sum(int(n) for n in targets.values())
    normals_df = pool[pool["label"] == NORMAL].sort_values("id")
    if total and normals_df.empty:
        raise DataError(index_path, "no normal train images to place defects on")
    normals = [_Target(r, dataset, s) for r in normals_df.itertuples(index=False)] if total else []
    normal_app = np.stack([t.appearance for t in normals]) if normals else np.zeros((0, 0))
    method.prepare(dataset.class_names)

    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"augment {method.name}", unit="img")
    rows: list[dict] = []
    for name in dataset.class_names:
        n = int(targets.get(name, 0))
        if n <= 0:
            continue
        cid = dataset.class_ids[name]
        sources = load_sources(dataset, pool, name, s)
        if not sources:
            raise DataError(index_path, f"no train image with a {name!r} defect to take masks from")
        src_app = np.stack([appearance(src.image, src.fg) for src in sources])
        prior = class_distances(sources) if s.location_prior else None
        order = np.random.default_rng(np.random.SeedSequence([seed, cid])).permutation(len(normals))
        # for every normal image, the sources that look most like it
        near = nearest_sources_all(normal_app, src_app, s.appearance_top_k)
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence([seed, cid, i]))
            placed = None
            for attempt in range(min(len(normals), MAX_NORMAL_ATTEMPTS)):
                t = order[(i + attempt) % len(normals)]
                placed = _place_all(normals[t], sources, near[t], rng, s, prior)
                if placed:
                    break
            if not placed:
                raise SyndganError(
                    f"augment: could not place a {name!r} defect on {min(len(normals), MAX_NORMAL_ATTEMPTS)} train "
                    f"normal images (min_context_agreement={s.min_context_agreement}, tries={s.tries}); lower "
                    "augment.placement.min_context_agreement or widen scale/rotation"
                )
            target = normals[t]
            labels = compose_labelmap(target.image.shape[:2], placed)
            image = method.render(target.image, labels, placed, int(rng.integers(2**31 - 1)))
            source = {
                "group": str(target.group),
                "normal_source": target.id,
                "mask_source": "|".join(p.source_id for p in placed),
                "transform": json.dumps([p.record() for p in placed]),
            }
            rows.append(_write(out, method.name, name, i, image, labels, dataset.mode, source, seed))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    manifest = pd.DataFrame(rows, columns=list(AUGMENTED_COLUMNS))
    return manifest.astype(AUGMENTED_COLUMNS)


def nearest_sources_all(normal_app: np.ndarray, src_app: np.ndarray, k: int) -> list[np.ndarray]:
    return [nearest_sources(a, src_app, k) for a in normal_app]


def _place_all(
    target: _Target, sources, candidates: np.ndarray, rng: np.random.Generator, s: PlacementSettings, prior=None
):
    """1..max_defects placements of distinct sources on ``target``; [] when the first one fails.

    With ``recombine`` a source may be united with another candidate of the class (possibly itself) first.
    """
    n_defects = int(rng.integers(1, s.max_defects + 1))
    placed = []
    occupied = np.zeros(target.fg.shape, bool)
    available = list(candidates)
    for _ in range(n_defects):
        if not available:
            break
        src = sources[available.pop(int(rng.integers(len(available))))]
        if s.recombine > 0 and rng.random() < s.recombine:
            src = recombine(src, sources[candidates[int(rng.integers(len(candidates)))]], rng)
        p = place_defect(src, target.surface, rng, s, occupied, prior=prior)
        if p is None:
            break
        placed.append(p)
        occupied[p.slices] |= p.mask
    return placed


def sample_unpaired(
    dataset: ProcessedDataset, method: AugmentMethod, targets: Mapping[str, int], out: Path, seed: int, progress: bool
) -> pd.DataFrame:
    """``targets[c]`` whole images per class from an unpaired method (module doc), written like placed ones."""
    method.prepare(dataset.class_names)
    total = sum(max(int(n), 0) for n in targets.values())
    bar = None
    if progress and total:
        from tqdm import tqdm

        bar = tqdm(total=total, desc=f"augment {method.name}", unit="img")
    size, rows = dataset.resolution, []
    empty = np.zeros((size, size), np.uint8)  # no placed mask: the defect's location is unknown
    want = (size, size) if dataset.mode == "L" else (size, size, 3)
    for name in dataset.class_names:
        n = int(targets.get(name, 0))
        if n <= 0:
            continue
        cid = dataset.class_ids[name]
        normals, learned = method.sources(name)
        for i in range(n):
            rng = np.random.default_rng(np.random.SeedSequence([seed, cid, i]))
            image = np.asarray(method.sample(name, int(rng.integers(2**31 - 1)), size))
            if image.shape != want or image.dtype != np.uint8:
                raise SyndganError(f"augment {method.name}: sampled {image.dtype} {image.shape}, expected uint8 {want}")
            source = {
                "group": f"{method.name}/{name}/{i:05d}",  # a sampled image is a part of its own
                "normal_source": "|".join(normals),
                "mask_source": "|".join(learned),
                "transform": "[]",
            }
            rows.append(_write(out, method.name, name, i, image, empty, dataset.mode, source, seed))
            if bar is not None:
                bar.update()
    if bar is not None:
        bar.close()
    return pd.DataFrame(rows, columns=list(AUGMENTED_COLUMNS)).astype(AUGMENTED_COLUMNS)


def _write(out: Path, method: str, name: str, i: int, image, labels, mode: str, source: dict[str, str], seed: int):
    """Save image ``i`` of class ``name`` and its label map; its manifest row (``source``: group, normal_source,
    mask_source, transform)."""
    image_id = f"{method}/{name}/{i:05d}"
    stem = image_id.replace("/", "__")
    image = np.asarray(image)
    Image.fromarray(image[..., 0] if image.ndim == 3 and mode == "L" else image, mode).save(
        out / "images" / f"{stem}.png"
    )
    Image.fromarray(labels, "L").save(out / "labelmaps" / f"{stem}.png")
    return {
        "id": image_id,
        "label": name,
        "labels": name,
        "split": "train",
        "group": source["group"],
        "image": f"images/{stem}.png",
        "labelmap": f"labelmaps/{stem}.png",
        "normal_source": source["normal_source"],
        "mask_source": source["mask_source"],
        "method": method,
        "seed": int(seed),
        "rank": int(i),
        "transform": source["transform"],
    }


def check_provenance(
    manifest: pd.DataFrame, allowed: pd.DataFrame, where: str | Path, index: pd.DataFrame | None = None
) -> None:
    """Every synthetic image must derive from ``allowed`` images only (the train pool).

    Each ``normal_source`` must be an allowed normal image, each ``mask_source`` an allowed image containing
    the row's class. Raises ``DataError(where, ...)`` naming the first offending row and source (and,
    given the full ``index``, the split it really is in).
    """
    if manifest.empty:
        return
    info = allowed.set_index("id")
    labels = info["label"].to_dict()
    multi = info["labels"].to_dict()
    splits = index.set_index("id")["split"].to_dict() if index is not None else {}

    def outside(src: str) -> str:
        if splits.get(src, "train") != "train":
            return f"in split {splits[src]!r}"
        return "not in the train pool (unknown id, or left out by k_shot)"

    for row in manifest.itertuples(index=False):
        normals = _split_sources(row.normal_source)
        if not normals:
            raise DataError(where, f"row {row.id}: no normal_source")
        for src in normals:  # one normal image; unpaired methods list every one the image derives from
            if src not in labels:
                raise DataError(where, f"row {row.id}: normal_source {src!r} is {outside(src)}")
            if labels[src] != NORMAL:
                raise DataError(where, f"row {row.id}: normal_source {src!r} is not a normal image")
        for src in _split_sources(row.mask_source):
            if src not in multi:
                raise DataError(where, f"row {row.id}: mask_source {src!r} is {outside(src)}")
            if not has_class(multi[src], row.label):
                raise DataError(where, f"row {row.id}: mask_source {src!r} has no {row.label!r} defect")


def _split_sources(value: str) -> Iterable[str]:
    return [s for s in str(value).split("|") if s]


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in AUGMENTED_COLUMNS.items()})
