"""Many annotated datasets -> one verified image manifest, one region table and a split.

``ingest`` reads every source with its reader, then, once for all formats:

* opens and fully decodes every image (corrupt or truncated files fail here, not in training),
  refuses images over ``max_pixels`` from the header alone, records sha256, size and colour mode;
* checks every annotation against its image: declared size, polygons (>= 3 distinct points, inside
  the image within ``tolerance`` px, not self-intersecting), mask size, known class (after the
  source's label map), files inside the dataset root (symlinks resolved);
 * refuses duplicates: two files with the same content (sha256) or the same image id, keeping the one
  the previous manifest holds (see ``syndgan.data.duplicates``);
* labels each image, groups it, and splits groups into train/val/test (see ``assign_splits``), or, for a
  source with ``split="source"`` (MVTec AD), keeps the dataset's own test images in test and divides its
  train images into train and val in the ratio of the train and val fractions. Images of a ``synthetic``
  source (generated, e.g. by the defect studio) always go to train and take no part in the split draw, so
  the real images' splits do not change when they are added.

Unlabelled images (no annotation at all: an image without a LabelMe JSON, a COCO image without
annotations, a CVAT image without shapes or tags) are normal images with ``unlabelled="normal"``, and
left out with ``"ignore"``; the report counts both.

Image label: the class the source states for the image (class folder, LabelMe flag / CVAT tag
naming a class) when there is exactly one; otherwise the class of its regions; with several
classes, ``multi_label="largest_area"`` takes the class with the largest total region area (ties:
the earlier class in ``classes``), ``"first"`` the class stated first, else of the first region in
the file. ``labels`` lists every class present ("|"-joined, sorted). No class at all: "normal".
Regions whose label maps to "normal" are dropped (their masks are only checked for size).

Errors: ``on_error="fail"`` raises the first problem (a ``DataError``: ``"<file>: <problem>"``, one
line); ``"skip"`` drops the offending image (or the whole file, for an unreadable annotation file)
and lists it in ``report["skipped"]``. Results depend only on the data and parameters: not on
file-system listing order, source order or thread timing.

Masks that exist only in memory (decoded RLE, LabelMe mask shapes) and images embedded in LabelMe
JSON are returned in ``IngestResult.files`` under ``extract_dir`` (``masks/``, ``images/``); the
tables already point there, so the caller must write them (``pipeline.ingest`` does).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from syndgan.data.checks import Checked, Item, Rules, check_image
from syndgan.data.classmasks import check_mask_settings, read_class_masks
from syndgan.data.coco import read_coco
from syndgan.data.cvat import read_cvat
from syndgan.data.duplicates import drop_same_bytes, drop_same_ids, ingested
from syndgan.data.images import pixel_limit_disabled
from syndgan.data.labelme import read_labelme
from syndgan.data.maskfolders import read_magnetic_tile, read_mvtec
from syndgan.data.records import NORMAL, ImageRecord, handle
from syndgan.data.splitting import SPLITS, assign_splits, group_label, split_counts
from syndgan.errors import ConfigError, DataError, PathEscapeError

__all__ = ["SPLITS", "Source", "IngestResult", "ingest", "read_source", "assign_splits", "group_label", "split_counts"]

log = logging.getLogger(__name__)

FORMATS = ("labelme", "coco", "cvat", "mvtec", "magnetic_tile", "masks")
IMAGES_FOLDER_FORMATS = ("labelme", "coco", "cvat", "masks")  # formats whose images may live in a folder of their own
SOURCE_SPLIT_FORMATS = ("mvtec",)  # formats that ship their own train/test split

MANIFEST_COLUMNS = {
    "id": "str",
    "source": "str",
    "path": "str",
    "annotation": "str",  # the annotation file ("" for class-folder datasets): what duplicates are judged by
    "sha256": "str",
    "width": "int64",
    "height": "int64",
    "mode": "str",
    "label": "str",
    "labels": "str",
    "split": "str",
    "group": "str",
}
ANNOTATION_COLUMNS = {
    "image_id": "str",
    "label": "str",
    "shape": "str",
    "points": "str",
    "mask_path": "str",
    "mask_threshold": "int64",
    "x0": "float64",
    "y0": "float64",
    "x1": "float64",
    "y1": "float64",
    "area": "float64",
}


@dataclass
class Source:
    """One dataset to ingest (``pipeline.ingest`` builds these from ``params.yaml``)."""

    format: str  # one of FORMATS
    root: str | Path
    name: str = ""  # id prefix; default: the root folder's name
    annotations: str | Path | None = None  # COCO JSON / CVAT XML, relative to root
    group_pattern: str | None = None  # regex searched in the image stem: group(1), else the match
    label_map: dict[str, str] = field(default_factory=dict)  # source label -> class or "normal"
    images: str | Path | None = None  # image folder apart from the annotations (labelme, coco, cvat, masks)
    masks: str | Path | None = None  # class-id mask folder, a path like root (masks; see syndgan.data.classmasks)
    mask_suffix: str = ""  # mask stem = image stem + this (masks)
    mask_values: dict[int, str] = field(default_factory=dict)  # mask pixel value -> label or "normal" (masks)
    unlabelled: str = "normal"  # images without any annotation: "normal" | "ignore"
    split: str = "pool"  # "source": keep the dataset's own train/test split (mvtec)
    synthetic: bool = False  # generated images (e.g. the defect studio's): always train, never val/test

    @property
    def id_prefix(self) -> str:
        return self.name or Path(os.path.abspath(self.root)).name


@dataclass
class IngestResult:
    manifest: pd.DataFrame  # one row per image (MANIFEST_COLUMNS)
    annotations: pd.DataFrame  # one row per region (ANNOTATION_COLUMNS)
    report: dict  # {"counts": {...}, "skipped": [{"path", "problem", "error"}], ...}
    files: dict[str, bytes] = field(default_factory=dict)  # extracted files to write: path -> content


def read_source(source: Source, on_error: Callable[[DataError], None] | None = None) -> list[ImageRecord]:
    """Records of one source, in its reader's (sorted) order."""
    root = Path(source.root)
    if source.images is not None and not Path(source.images).is_dir():
        raise DataError(source.images, f"images folder of source {source.id_prefix!r} not found")
    if source.format == "labelme":
        return read_labelme(root, on_error, source.images)
    if source.format in ("coco", "cvat"):
        if not source.annotations:
            raise ConfigError(f"source {source.id_prefix!r}: format {source.format} needs an annotations file")
        reader = read_coco if source.format == "coco" else read_cvat
        return reader(root, source.annotations, on_error, source.images)
    if source.format == "mvtec":
        return read_mvtec(root, on_error)
    if source.format == "magnetic_tile":
        return read_magnetic_tile(root, on_error)
    if source.format == "masks":
        return read_class_masks(root, source.masks, source.mask_values, source.mask_suffix, on_error, source.images)
    raise ConfigError(f"source {source.id_prefix!r}: unknown format {source.format!r} (known: {', '.join(FORMATS)})")


# --------------------------------------------------------------------------- the whole thing


def _check_arguments(sources, classes, split, on_error, multi_label, max_pixels, seed) -> None:
    if on_error not in ("fail", "skip"):
        raise ConfigError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    if multi_label not in ("largest_area", "first"):
        raise ConfigError(f"multi_label must be 'largest_area' or 'first', got {multi_label!r}")
    if NORMAL in classes or len(set(classes)) != len(classes):
        raise ConfigError(f"classes must be distinct and may not include {NORMAL!r}: {list(classes)}")
    if len(split) != 3 or min(split) < 0 or split[0] <= 0 or abs(sum(split) - 1) > 1e-6:
        raise ConfigError(f"split fractions (train, val, test) must be >= 0, sum to 1, train > 0: {tuple(split)}")
    if max_pixels < 1:
        raise ConfigError(f"max_pixels must be >= 1, got {max_pixels}")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    if not sources:
        raise ConfigError("no sources to ingest")
    names = [s.id_prefix for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise ConfigError(f"two sources are named {name!r}; give them distinct names")
        if not name or "/" in name:
            raise ConfigError(f"source name {name!r} must be non-empty and contain no '/'")
    for s in sources:
        if s.format not in FORMATS:
            raise ConfigError(f"source {s.id_prefix!r}: unknown format {s.format!r} (known: {', '.join(FORMATS)})")
        if s.group_pattern:
            try:
                re.compile(s.group_pattern)
            except re.error as e:
                raise ConfigError(f"source {s.id_prefix!r}: group_pattern {s.group_pattern!r}: {e}") from None
        for k, v in s.label_map.items():
            if v != NORMAL and v not in classes:
                raise ConfigError(f"source {s.id_prefix!r}: label_map.{k} -> {v!r} is not a class or 'normal'")
        if s.unlabelled not in ("normal", "ignore"):
            raise ConfigError(f"source {s.id_prefix!r}: unlabelled must be 'normal' or 'ignore', got {s.unlabelled!r}")
        if s.split not in ("pool", "source") or (s.split == "source" and s.format not in SOURCE_SPLIT_FORMATS):
            raise ConfigError(
                f"source {s.id_prefix!r}: split must be 'pool' or 'source' (source: mvtec), got {s.split!r}"
            )
        if s.images is not None and s.format not in IMAGES_FOLDER_FORMATS:
            raise ConfigError(f"source {s.id_prefix!r}: images is for {', '.join(IMAGES_FOLDER_FORMATS)} sources")
        check_mask_settings(s, classes)


def _items(source: Source, records: list[ImageRecord], collect) -> list[Item]:
    root = Path(os.path.abspath(source.root))
    homes = [root] + ([Path(os.path.abspath(source.images))] if source.images is not None else [])
    pattern = re.compile(source.group_pattern) if source.group_pattern else None
    out = []
    for rec in records:
        base = Path(os.path.abspath(rec.path))  # for embedded images this is the JSON file
        home = next((h for h in homes if base.is_relative_to(h)), None)
        if home is None:
            handle(PathEscapeError(base, f"file is outside the dataset root {root}"), collect)
            continue
        rel = base.relative_to(home)  # ids: relative to the root, or to the images folder for images kept there
        image_id = f"{source.id_prefix}/{rel.with_suffix('').as_posix()}"
        item = Item(source, home, rec, image_id, rel.as_posix())
        stem = Path(base).stem
        m = pattern.search(stem) if pattern else None
        if rec.group is not None:
            group = f"{source.id_prefix}/{rec.group}"
        elif m is not None:
            g = m.group(1) if m.re.groups and m.group(1) is not None else m.group(0)
            group = f"{source.id_prefix}/{g}"
        else:
            group = image_id
        item.record.group = group
        out.append(item)
    return out


def ingest(
    sources: Sequence[Source],
    classes: Sequence[str],
    *,
    split: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    on_error: str = "fail",
    max_pixels: int = 40_000_000,
    multi_label: str = "largest_area",
    extract_dir: str | Path = "extracted",
    tolerance: float = 1.0,
    workers: int | None = None,
    progress: bool = False,
    previous: pd.DataFrame | None = None,
) -> IngestResult:
    """Read, verify, label, group and split ``sources``; see the module docstring for the rules.

    ``classes``: defect class names in id order. ``split``: (train, val, test) fractions.
    ``extract_dir``: where in-memory masks / embedded images will be written (absolute, normally).
    ``tolerance``: how far (px) polygon points may lie outside the image; they are clipped to it.
    ``workers``: threads decoding images (default: up to 8, one per CPU).
    ``previous``: the last manifest of this output (paths absolute or relative to the working directory):
    of duplicates, the file it holds is kept.
    """
    classes = list(classes)
    _check_arguments(sources, classes, split, on_error, multi_label, max_pixels, seed)
    skipped: list[dict] = []

    def collect(err: DataError) -> None:
        log.warning("skipped %s", err)
        skipped.append({"path": err.path, "problem": err.problem, "error": type(err).__name__})

    handler = collect if on_error == "skip" else None
    warnings: list[str] = []

    def warn(msg: str) -> None:  # traps a run survives but a user must hear of: the log and the report
        log.warning("%s", msg)
        warnings.append(msg)

    items: list[Item] = []
    per_source: dict[str, int] = {}
    ignored = 0
    for source in sources:
        records = read_source(source, handler)
        per_source[source.id_prefix] = len(records)
        log.info("%s (%s, %s): %d images", source.id_prefix, source.format, source.root, len(records))
        if source.format == "labelme" and records and all(r.unlabelled for r in records):
            warn(
                f"source {source.id_prefix!r}: no LabelMe JSON was read under {source.root}, so all {len(records)} "
                f"images are unlabelled ({'taken as normal' if source.unlabelled == 'normal' else 'ignored'}); "
                "is root the annotations folder?"
            )
        if source.unlabelled == "ignore":
            ignored += sum(r.unlabelled for r in records)
            records = [r for r in records if not r.unlabelled]
        items += _items(source, records, handler)
    known = ingested(previous)
    items = drop_same_ids(items, known, handler)

    rules = Rules(classes, max_pixels, tolerance, multi_label, Path(extract_dir))
    checked: list[Checked] = []
    n_workers = workers or min(8, os.cpu_count() or 1)

    def run(item: Item) -> Checked | DataError:
        try:
            return check_image(item, rules)
        except DataError as e:
            return e

    with pixel_limit_disabled():
        pool = ThreadPoolExecutor(max_workers=n_workers) if n_workers > 1 else None
        try:
            results = pool.map(run, items) if pool else map(run, items)
            if progress:
                from tqdm import tqdm

                results = tqdm(results, total=len(items), desc="ingest", unit="img", disable=None)  # off without a tty
            for res in results:  # in id order, so the first error raised is deterministic
                if isinstance(res, DataError):
                    handle(res, handler)
                else:
                    checked.append(res)
        finally:
            if pool:
                pool.shutdown(wait=True, cancel_futures=True)

    unique = drop_same_bytes(checked, known, handler)
    if not unique:
        raise DataError(", ".join(str(s.root) for s in sources), "no usable images")

    groups = [c.item.record.group for c in unique]
    # Synthetic images join train only and are left out of the split draw: real images keep their splits.
    real = [i for i, c in enumerate(unique) if not c.item.source.synthetic]
    own = [unique[i].item.record.split if unique[i].item.source.split == "source" else None for i in real]
    splits = ["train"] * len(unique)
    drawn = assign_splits([groups[i] for i in real], [unique[i].row["label"] for i in real], split, seed, classes, own)
    for i, s in zip(real, drawn, strict=True):
        splits[i] = s
    rows = [{**c.row, "split": s, "group": g} for c, s, g in zip(unique, splits, groups, strict=True)]
    manifest = _frame(rows, MANIFEST_COLUMNS)
    annotations = _frame([r for c in unique for r in c.regions], ANNOTATION_COLUMNS)
    files = {p: b for c in unique for p, b in c.files.items()}
    report = _report(manifest, annotations, unique, skipped, per_source, classes, split, seed)
    report["counts"]["unlabelled"] = {"normal": sum(c.item.record.unlabelled for c in unique), "ignored": ignored}
    report["source_split"] = sorted(s.id_prefix for s in sources if s.split == "source")
    train = report["counts"]["by_split_label"]["train"]
    missing = [c for c in classes if not train[c]]
    if missing:
        what = "defect image" if missing == classes else f"image of {', '.join(missing)}"
        why = f" ({', '.join(report['source_split'])}: split: source keeps the dataset's own split)"
        warn(f"train holds no {what}: nothing downstream can learn it" + (why if report["source_split"] else ""))
    report["warnings"] = warnings
    return IngestResult(manifest, annotations, report, files)


def _frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    data = {name: pd.Series([r[name] for r in rows], dtype=dtype) for name, dtype in columns.items()}
    return pd.DataFrame(data, columns=list(columns))


def _report(manifest, annotations, checked, skipped, per_source, classes, split, seed) -> dict:
    order = [NORMAL, *classes]

    def counts(series) -> dict[str, int]:
        c = Counter(series)
        return {k: int(c.get(k, 0)) for k in order}

    return {
        "counts": {
            "images": len(manifest),
            "regions": len(annotations),
            "by_label": counts(manifest["label"]),
            "by_split": {s: int((manifest["split"] == s).sum()) for s in SPLITS},
            "by_split_label": {s: counts(manifest.loc[manifest["split"] == s, "label"]) for s in SPLITS},
            "groups": int(manifest["group"].nunique()),
            "regions_by_label": {k: v for k, v in counts(annotations["label"]).items() if k != NORMAL},
            "defect_images_without_regions": sum(c.empty_defect for c in checked),
            "read_by_source": per_source,
            "skipped": len(skipped),
        },
        "skipped": skipped,
        "classes": list(classes),
        "split_fractions": dict(zip(SPLITS, map(float, split), strict=True)),
        "seed": seed,
    }
