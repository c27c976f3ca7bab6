"""Per-image checks of ingest: one record against its image, mapped to project classes, into manifest and region rows.

See ``syndgan.data.ingest`` for the rules; this module only checks one image at a time (thread-safe).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from syndgan.data import polygons
from syndgan.data.images import decode_mask, inspect_image, load_mask
from syndgan.data.records import NORMAL, SHAPE_MASK, SHAPE_POLYGON, ImageRecord, check_inside
from syndgan.errors import AnnotationError

if TYPE_CHECKING:
    from syndgan.data.ingest import Source


@dataclass
class Item:
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
class Checked:
    item: Item
    row: dict
    regions: list[dict]
    files: dict[str, bytes]
    empty_defect: bool  # a defect image (stated class) without any region


@dataclass
class Rules:
    classes: list[str]
    max_pixels: int
    tolerance: float
    multi_label: str
    extract_dir: Path

    def __post_init__(self):
        self.rank = {c: i for i, c in enumerate(self.classes)}


def check_image(item: Item, rules: Rules) -> Checked:
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
        "annotation": str(rec.annotation_file or ""),
        "sha256": info.sha256,
        "width": w,
        "height": h,
        "mode": info.mode,
        "label": label,
        "labels": "|".join(sorted(present)),
    }
    empty_defect = label != NORMAL and not regions
    return Checked(item, row, regions, files, empty_defect)


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


def _mask_region(item: Item, k: int, ann, label: str, size, rules: Rules, files: dict, fail) -> dict | None:
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
