"""COCO instances JSON: ``images``, ``annotations``, ``categories``.

``file_name`` is relative to the dataset root (``<root>/images/<file_name>`` is tried too, the layout
of many exports), or to the source's ``images`` folder when it names one. Segmentations: polygon lists;
RLE, uncompressed (``counts`` a list) or compressed (``counts`` a string) is decoded here into an
in-memory mask (``Annotation.mask_bytes``; ingest writes it out as a PNG); an annotation with only a
``bbox`` becomes that rectangle. Images without annotations are unlabelled (``ImageRecord.unlabelled``).
A problem with one image (bad segmentation, unknown category...) drops that image; an unreadable file
drops the whole file.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from syndgan.data import polygons
from syndgan.data.images import encode_mask
from syndgan.data.records import SHAPE_MASK, SHAPE_POLYGON, Annotation, ErrorHandler, ImageRecord, dataset_image, handle
from syndgan.errors import AnnotationError, DataError


def rle_string_to_counts(s: str) -> list[int]:
    """Decode COCO's compressed RLE string (pycocotools ``rleFrString``).

    Each count is a little-endian base-32 varint in printable characters (value + 48): 5 data bits
    per character, bit 0x20 = "more characters follow", bit 0x10 of the last one = sign. From the
    third count on, values are stored as differences to the count two places before.
    """
    counts: list[int] = []
    p = 0
    while p < len(s):
        x, k, more = 0, 0, True
        while more:
            if p >= len(s):
                raise ValueError("RLE string ends in the middle of a count")
            c = ord(s[p]) - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {s[p]!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    return counts


def rle_decode(counts: list[int], height: int, width: int, order: str = "F") -> np.ndarray:
    """Run lengths (starting with background) -> boolean (height, width) mask.

    COCO runs go down columns (``order="F"``); CVAT runs go along rows (``order="C"``).
    """
    counts_arr = np.asarray(counts, dtype=np.int64)
    if (counts_arr < 0).any():
        raise ValueError("negative run length")
    if int(counts_arr.sum()) != height * width:
        raise ValueError(f"run lengths add up to {int(counts_arr.sum())}, not {height}x{width} = {height * width}")
    values = np.arange(len(counts_arr)) % 2 == 1
    flat = np.repeat(values, counts_arr)
    return flat.reshape((height, width), order=order)


def read_coco(
    root: str | Path, annotations: str | Path, on_error: ErrorHandler | None = None, image_dir: str | Path | None = None
) -> list[ImageRecord]:
    root = Path(root).absolute()
    image_dir = Path(image_dir).absolute() if image_dir is not None else None
    if not root.is_dir():
        raise DataError(root, "dataset root not found (coco)")
    ann_file = Path(annotations)
    ann_file = ann_file if ann_file.is_absolute() else root / ann_file
    try:
        doc = json.loads(ann_file.read_text(encoding="utf-8"))
        if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
            raise AnnotationError(ann_file, "not a COCO file: no 'images' list")
        categories = _categories(doc, ann_file)
    except json.JSONDecodeError as e:
        handle(AnnotationError(ann_file, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}"), on_error)
        return []
    except (OSError, UnicodeDecodeError) as e:
        handle(AnnotationError(ann_file, f"cannot read: {e}"), on_error)
        return []
    except AnnotationError as e:
        handle(e, on_error)
        return []

    images: dict[int, tuple[str, dict]] = {}  # id -> (file_name, entry)
    bad: dict[int, AnnotationError] = {}
    records: dict[int, ImageRecord] = {}
    for i, img in enumerate(doc["images"]):
        name = img.get("file_name") if isinstance(img, dict) else None
        iid = img.get("id") if isinstance(img, dict) else None
        if not isinstance(name, str) or not name or not isinstance(iid, int):
            handle(AnnotationError(ann_file, f"images[{i}]: needs an integer 'id' and a 'file_name'"), on_error)
            continue
        if iid in images:
            handle(AnnotationError(ann_file, f"image {name!r}: id {iid} already used by {images[iid][0]!r}"), on_error)
            continue
        images[iid] = (name, img)
        try:
            records[iid] = _record(root, ann_file, name, img, image_dir)
        except DataError as e:
            bad[iid] = e

    anns = doc.get("annotations") or []
    if not isinstance(anns, list):
        handle(AnnotationError(ann_file, "'annotations' must be a list"), on_error)
        return []
    by_image: dict[int, list[Annotation]] = defaultdict(list)
    for i, ann in enumerate(anns):
        iid = ann.get("image_id") if isinstance(ann, dict) else None
        if iid not in images:
            handle(AnnotationError(ann_file, f"annotations[{i}]: image_id {iid!r} is not in 'images'"), on_error)
            continue
        if iid in bad or iid not in records:
            continue
        name = images[iid][0]
        try:
            by_image[iid].extend(_annotation(ann, i, name, images[iid][1], categories, ann_file))
        except AnnotationError as e:
            bad[iid] = e

    out = []
    for iid in sorted(images, key=lambda k: images[k][0]):
        if iid in bad:
            handle(bad[iid], on_error)
        elif iid in records:
            records[iid].annotations = by_image.get(iid, [])
            records[iid].unlabelled = not records[iid].annotations
            out.append(records[iid])
    return out


def _categories(doc: dict, ann_file: Path) -> dict[int, str]:
    cats = doc.get("categories") or []
    out = {}
    for c in cats if isinstance(cats, list) else []:
        if not isinstance(c, dict) or not isinstance(c.get("id"), int) or not isinstance(c.get("name"), str):
            raise AnnotationError(ann_file, f"category {c!r}: needs an integer 'id' and a 'name'")
        out[c["id"]] = c["name"]
    return out


def _record(root: Path, ann_file: Path, name: str, img: dict, image_dir: Path | None) -> ImageRecord:
    path = dataset_image(root, name, ann_file, image_dir)
    w, h = img.get("width"), img.get("height")
    declared = None
    if w is not None or h is not None:
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            raise AnnotationError(ann_file, f"image {name!r}: width/height must be positive integers, got {w!r}, {h!r}")
        declared = (w, h)
    return ImageRecord(path=path, declared_size=declared, annotation_file=ann_file)


def _annotation(ann: dict, i: int, name: str, img: dict, categories: dict[int, str], ann_file: Path):
    where = f"annotation id {ann.get('id', i)}"
    ctx = f"image {name!r}: {where}"
    cat = ann.get("category_id")
    if cat not in categories:
        raise AnnotationError(ann_file, f"{ctx}: category_id {cat!r} is not in 'categories'")
    label = categories[cat]
    seg = ann.get("segmentation")
    common = {"source_file": ann_file, "where": where}
    if isinstance(seg, dict):
        return [Annotation(label, SHAPE_MASK, mask_bytes=_rle_mask(seg, ctx, ann_file), **common)]
    if isinstance(seg, list) and seg:
        out = []
        for k, poly in enumerate(seg):
            if (
                not isinstance(poly, list)
                or len(poly) % 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in poly)
            ):
                raise AnnotationError(ann_file, f"{ctx}: polygon {k} must be a flat list [x1, y1, x2, y2, ...]")
            pts = [(float(poly[j]), float(poly[j + 1])) for j in range(0, len(poly), 2)]
            out.append(Annotation(label, SHAPE_POLYGON, pts, **common))
        return out
    bbox = ann.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        x, y, w, h = (float(v) for v in bbox)
        if w <= 0 or h <= 0:
            raise AnnotationError(ann_file, f"{ctx}: bbox {bbox} has no area")
        return [Annotation(label, SHAPE_POLYGON, polygons.rectangle((x, y), (x + w, y + h)), **common)]
    raise AnnotationError(ann_file, f"{ctx}: no segmentation and no bbox")


def _rle_mask(seg: dict, ctx: str, ann_file: Path) -> bytes:
    size, counts = seg.get("size"), seg.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise AnnotationError(ann_file, f"{ctx}: RLE 'size' must be [height, width], got {size!r}")
    h, w = size
    try:
        if isinstance(counts, str):
            counts = rle_string_to_counts(counts)
        elif not (isinstance(counts, list) and all(isinstance(c, int) for c in counts)):
            raise ValueError("'counts' must be a list of integers or a compressed string")
        mask = rle_decode(counts, h, w, order="F")
    except ValueError as e:
        raise AnnotationError(ann_file, f"{ctx}: bad RLE: {e}") from None
    return encode_mask(mask)
