"""Many annotated datasets -> one verified image manifest, one region table and a split.

``ingest`` reads every source with its reader, then, once for all formats:

* opens and fully decodes every image (corrupt or truncated files fail here, not in training),
  refuses images over ``max_pixels`` from the header alone, records sha256, size and colour mode;
* checks every annotation against its image: declared size, polygons (>= 3 distinct points, inside
  the image within ``tolerance`` px, not self-intersecting), mask size, known class (after the
  source's label map), files inside the dataset root (symlinks resolved);
* refuses duplicates: two files with the same content (sha256) or the same image id;
* labels each image, groups it, and splits groups into train/val/test (see ``assign_splits``).
  Images of a ``synthetic`` source (generated, e.g. by the defect studio) always go to train and
  take no part in the split draw, so the real images' splits do not change when they are added.

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

import json
import logging
import os
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from syndgan.data import polygons
from syndgan.data.coco import read_coco
from syndgan.data.cvat import read_cvat
from syndgan.data.images import decode_mask, inspect_image, load_mask, pixel_limit_disabled
from syndgan.data.labelme import read_labelme
from syndgan.data.maskfolders import read_magnetic_tile, read_mvtec
from syndgan.data.records import NORMAL, SHAPE_MASK, SHAPE_POLYGON, ImageRecord, check_inside, handle
from syndgan.errors import AnnotationError, ConfigError, DataError, DuplicateImageError, PathEscapeError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
FORMATS = ("labelme", "coco", "cvat", "mvtec", "magnetic_tile")

MANIFEST_COLUMNS = {
    "id": "str",
    "source": "str",
    "path": "str",
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
    if source.format == "labelme":
        return read_labelme(root, on_error)
    if source.format in ("coco", "cvat"):
        if not source.annotations:
            raise ConfigError(f"source {source.id_prefix!r}: format {source.format} needs an annotations file")
        reader = read_coco if source.format == "coco" else read_cvat
        return reader(root, source.annotations, on_error)
    if source.format == "mvtec":
        return read_mvtec(root, on_error)
    if source.format == "magnetic_tile":
        return read_magnetic_tile(root, on_error)
    raise ConfigError(f"source {source.id_prefix!r}: unknown format {source.format!r} (known: {', '.join(FORMATS)})")


# --------------------------------------------------------------------------- splitting


def split_counts(n: int, fractions: Sequence[float]) -> tuple[int, int, int]:
    """Groups of one stratum per split: rounded fractions; with >= 3 groups, val and test get at least
    one each when their fraction is > 0; train always keeps at least one."""
    _, f_val, f_test = fractions
    n_val, n_test = int(np.floor(n * f_val + 0.5)), int(np.floor(n * f_test + 0.5))
    if n >= 3:
        n_val = max(n_val, 1) if f_val > 0 else 0
        n_test = max(n_test, 1) if f_test > 0 else 0
    while n >= 1 and n - n_val - n_test < 1:
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n - n_val - n_test, n_val, n_test


def group_label(labels: Sequence[str], class_order: Sequence[str] = ()) -> str:
    """Most frequent defect class among a group's images (ties: class order, then name), else normal."""
    counts = Counter(lbl for lbl in labels if lbl != NORMAL)
    if not counts:
        return NORMAL
    rank = {c: i for i, c in enumerate(class_order)}
    return min(counts, key=lambda c: (-counts[c], rank.get(c, len(rank)), c))


def assign_splits(
    groups: Sequence[str],
    labels: Sequence[str],
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    seed: int = 0,
    class_order: Sequence[str] = (),
) -> list[str]:
    """Split per image, stratified by label and group-aware: a group's images share one split.

    Groups are stratified by ``group_label``. Within a stratum the sorted group names are shuffled
    by a generator seeded with (seed, crc32(stratum label)), so each stratum's split depends only on
    its own groups, never on input order or on the other classes; ``split_counts`` sizes the splits.
    """
    if len(groups) != len(labels):
        raise ValueError("groups and labels differ in length")
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    members: dict[str, list[str]] = defaultdict(list)
    for g, lbl in zip(groups, labels, strict=True):
        members[g].append(lbl)
    strata: dict[str, list[str]] = defaultdict(list)
    for g in sorted(members):
        strata[group_label(members[g], class_order)].append(g)
    where: dict[str, str] = {}
    for stratum, gs in strata.items():
        rng = np.random.default_rng([seed, zlib.crc32(stratum.encode("utf-8"))])
        order = [gs[i] for i in rng.permutation(len(gs))]
        n_train, n_val, _ = split_counts(len(gs), fractions)
        for k, g in enumerate(order):
            where[g] = "train" if k < n_train else "val" if k < n_train + n_val else "test"
    return [where[g] for g in groups]


# --------------------------------------------------------------------------- per-image checks


@dataclass
class _Item:
    source: Source
    root: Path
    record: ImageRecord
    id: str
    rel: str  # image path relative to its root, for messages

    @property
    def stem(self) -> str:
        return self.id.replace("/", "__")

    @property
    def shown(self) -> Path:
        """The file a person should look at: the image, or the JSON holding an embedded image."""
        return self.record.annotation_file if self.record.image_bytes is not None else self.record.path


@dataclass
class _Checked:
    item: _Item
    row: dict
    regions: list[dict]
    files: dict[str, bytes]
    empty_defect: bool  # a defect image (stated class) without any region


@dataclass
class _Rules:
    classes: list[str]
    max_pixels: int
    tolerance: float
    multi_label: str
    extract_dir: Path

    def __post_init__(self):
        self.rank = {c: i for i, c in enumerate(self.classes)}


def _check(item: _Item, rules: _Rules) -> _Checked:
    rec, src = item.record, item.source

    def mapped(label: str) -> str:
        return src.label_map.get(label, label)

    def known(label: str) -> bool:
        return label == NORMAL or label in rules.rank

    def fail(cls, problem: str, file: Path | None = None):
        file = Path(file or rec.annotation_file or rec.path)
        prefix = "" if file in (rec.path, item.shown) else f"image {item.rel!r}: "
        raise cls(file, prefix + problem)

    def unknown(label: str, what: str, file: Path | None = None):
        via = f" (mapped to {mapped(label)!r})" if mapped(label) != label else ""
        fail(
            AnnotationError,
            f"{what}unknown class {label!r}{via}; classes: {', '.join(rules.classes) or '(none)'}; "
            "add it to ingest.classes or map it with the source's label_map",
            file,
        )

    if rec.image_bytes is None:
        check_inside(item.root, rec.path, rec.annotation_file or rec.path)
    info = inspect_image(rec.path if rec.image_bytes is None else item.shown, rules.max_pixels, data=rec.image_bytes)
    w, h = info.width, info.height
    if rec.declared_size is not None and tuple(rec.declared_size) != (w, h):
        dw, dh = rec.declared_size
        fail(AnnotationError, f"annotation declares a {dw}x{dh} image but the image is {w}x{h}")

    stated: list[str] = []  # image-level classes stated by the source, mapped
    if rec.label is not None:
        if not known(mapped(rec.label)):
            unknown(rec.label, "folder class: ", rec.path)
        stated.append(mapped(rec.label))
    stated += [mapped(t) for t in rec.tags if known(mapped(t))]  # other flags/tags are metadata

    files: dict[str, bytes] = {}
    regions: list[dict] = []
    for k, ann in enumerate(rec.annotations):
        label = mapped(ann.label)
        what = f"{ann.where} ({ann.label!r}): " if ann.where else ""
        if not known(label):
            unknown(ann.label, what, ann.source_file)

        def bad(problem: str, ann=ann, what=what):
            fail(AnnotationError, what + problem, ann.source_file)

        if ann.shape == SHAPE_POLYGON:
            if label == NORMAL:
                continue
            region = _polygon_region(ann.points, w, h, rules.tolerance, bad)
        elif ann.shape == SHAPE_MASK:
            region = _mask_region(item, k, ann, label, (w, h), rules, files, bad)
            if region is None:
                continue
        else:
            bad(f"unknown shape {ann.shape!r}")
        regions.append({"image_id": item.id, "label": label, **region})

    present_order = [s for s in stated if s != NORMAL] + [r["label"] for r in regions]
    present = set(present_order)
    if NORMAL in stated and present:
        fail(
            AnnotationError,
            f"stated normal but has {sorted(present)[0]!r} regions or tags",
            rec.annotation_file or rec.path,
        )
    stated_defects = {s for s in stated if s != NORMAL}
    if not present:
        label = NORMAL
    elif len(stated_defects) == 1:
        label = next(iter(stated_defects))
    elif rules.multi_label == "first":
        label = present_order[0]
    else:
        area = Counter()
        for r in regions:
            area[r["label"]] += r["area"]
        label = min(present, key=lambda c: (-area[c], rules.rank[c]))

    if rec.image_bytes is not None:
        path = str(rules.extract_dir / "images" / f"{item.stem}{info.suffix}")
        files[path] = rec.image_bytes
    else:
        path = str(rec.path)
    row = {
        "id": item.id,
        "source": src.id_prefix,
        "path": path,
        "sha256": info.sha256,
        "width": w,
        "height": h,
        "mode": info.mode,
        "label": label,
        "labels": "|".join(sorted(present)),
    }
    empty_defect = label != NORMAL and not regions
    return _Checked(item, row, regions, files, empty_defect)


def _polygon_region(points, w: int, h: int, tol: float, fail) -> dict:
    pts = polygons.dedupe(points)
    if len(pts) < 3:
        fail(f"polygon has {len(pts)} distinct points (needs >= 3)")
    p = np.asarray(pts, dtype=np.float64)
    if not np.isfinite(p).all():
        fail("polygon has non-finite coordinates")
    out = (p[:, 0] < -tol) | (p[:, 0] > w + tol) | (p[:, 1] < -tol) | (p[:, 1] > h + tol)
    if out.any():
        x, y = p[np.argmax(out)]
        fail(f"polygon point ({x:g}, {y:g}) is outside the {w}x{h} image")
    bad = polygons.self_intersection(pts)
    if bad is not None:
        fail(f"polygon is self-intersecting (edges {bad[0]} and {bad[1]} meet)")
    p[:, 0] = p[:, 0].clip(0, w)
    p[:, 1] = p[:, 1].clip(0, h)
    area = polygons.area(p)
    if area <= 0:
        fail("polygon has zero area")
    return {
        "shape": SHAPE_POLYGON,
        "points": json.dumps(p.tolist()),
        "mask_path": "",
        "mask_threshold": 0,
        "x0": float(p[:, 0].min()),
        "y0": float(p[:, 1].min()),
        "x1": float(p[:, 0].max()),
        "y1": float(p[:, 1].max()),
        "area": area,
    }


def _mask_region(item: _Item, k: int, ann, label: str, size, rules: _Rules, files: dict, fail) -> dict | None:
    """Region of a mask (file or in-memory); None when it has no foreground or is labelled normal."""
    w, h = size
    if ann.mask_bytes is not None:
        # our own PNG from a reader: a wrong size is the annotation's fault, so name the annotation file
        path = rules.extract_dir / "masks" / f"{item.stem}__{k}.png"
        arr = decode_mask(ann.mask_bytes)
        if arr.shape != (h, w):
            fail(f"mask is {arr.shape[1]}x{arr.shape[0]} but the image is {w}x{h}")
    else:
        path = Path(ann.mask_path)
        check_inside(item.root, path, path)
        arr = load_mask(path, (w, h), rules.max_pixels, decode=label != NORMAL)
    if label == NORMAL:
        return None
    fg = arr > ann.mask_threshold
    rows, cols = fg.any(axis=1), fg.any(axis=0)
    if not rows.any():
        return None
    if ann.mask_bytes is not None:
        files[str(path)] = ann.mask_bytes
    return {
        "shape": SHAPE_MASK,
        "points": "",
        "mask_path": str(path),
        "mask_threshold": int(ann.mask_threshold),
        "x0": float(np.argmax(cols)),
        "y0": float(np.argmax(rows)),
        "x1": float(w - np.argmax(cols[::-1])),
        "y1": float(h - np.argmax(rows[::-1])),
        "area": float(np.count_nonzero(fg)),
    }


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


def _items(source: Source, records: list[ImageRecord], collect) -> list[_Item]:
    root = Path(os.path.abspath(source.root))
    pattern = re.compile(source.group_pattern) if source.group_pattern else None
    out = []
    for rec in records:
        base = rec.path  # for embedded images this is the JSON file
        rel = os.path.relpath(base, root)
        if rel.startswith(".."):
            handle(PathEscapeError(base, f"file is outside the dataset root {root}"), collect)
            continue
        rel_posix = Path(rel).as_posix()
        image_id = f"{source.id_prefix}/{Path(rel).with_suffix('').as_posix()}"
        item = _Item(source, root, rec, image_id, rel_posix)
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


def _drop_same_ids(items: list[_Item], collect) -> list[_Item]:
    items = sorted(items, key=lambda it: (it.id, str(it.record.annotation_file or it.record.path)))
    kept: list[_Item] = []
    for it in items:
        prev = kept[-1] if kept else None
        if prev is None or prev.id != it.id:
            kept.append(it)
        elif prev.record.path == it.record.path:
            handle(
                DuplicateImageError(
                    it.record.annotation_file or it.record.path,
                    f"annotates the same image {it.rel!r} as {prev.record.annotation_file}",
                ),
                collect,
            )
        else:
            handle(DuplicateImageError(it.shown, f"same image id {it.id!r} as {prev.shown}; rename one"), collect)
    return kept


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
) -> IngestResult:
    """Read, verify, label, group and split ``sources``; see the module docstring for the rules.

    ``classes``: defect class names in id order. ``split``: (train, val, test) fractions.
    ``extract_dir``: where in-memory masks / embedded images will be written (absolute, normally).
    ``tolerance``: how far (px) polygon points may lie outside the image; they are clipped to it.
    ``workers``: threads decoding images (default: up to 8, one per CPU).
    """
    classes = list(classes)
    _check_arguments(sources, classes, split, on_error, multi_label, max_pixels, seed)
    skipped: list[dict] = []

    def collect(err: DataError) -> None:
        log.warning("skipped %s", err)
        skipped.append({"path": err.path, "problem": err.problem, "error": type(err).__name__})

    handler = collect if on_error == "skip" else None
    items: list[_Item] = []
    per_source: dict[str, int] = {}
    for source in sources:
        records = read_source(source, handler)
        per_source[source.id_prefix] = len(records)
        log.info("%s (%s, %s): %d images", source.id_prefix, source.format, source.root, len(records))
        items += _items(source, records, handler)
    items = _drop_same_ids(items, handler)

    rules = _Rules(classes, max_pixels, tolerance, multi_label, Path(extract_dir))
    checked: list[_Checked] = []
    n_workers = workers or min(8, os.cpu_count() or 1)

    def run(item: _Item) -> _Checked | DataError:
        try:
            return _check(item, rules)
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

    by_sha: dict[str, _Checked] = {}
    unique: list[_Checked] = []
    for c in checked:
        first = by_sha.get(c.row["sha256"])
        if first is not None:
            handle(DuplicateImageError(c.item.shown, f"same image as {first.item.shown} (identical sha256)"), handler)
            continue
        by_sha[c.row["sha256"]] = c
        unique.append(c)
    if not unique:
        raise DataError(", ".join(str(s.root) for s in sources), "no usable images")

    groups = [c.item.record.group for c in unique]
    # Synthetic images join train only and are left out of the split draw: real images keep their splits.
    real = [i for i, c in enumerate(unique) if not c.item.source.synthetic]
    splits = ["train"] * len(unique)
    drawn = assign_splits([groups[i] for i in real], [unique[i].row["label"] for i in real], split, seed, classes)
    for i, s in zip(real, drawn, strict=True):
        splits[i] = s
    rows = [{**c.row, "split": s, "group": g} for c, s, g in zip(unique, splits, groups, strict=True)]
    manifest = _frame(rows, MANIFEST_COLUMNS)
    annotations = _frame([r for c in unique for r in c.regions], ANNOTATION_COLUMNS)
    files = {p: b for c in unique for p, b in c.files.items()}
    report = _report(manifest, annotations, unique, skipped, per_source, classes, split, seed)
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
