"""LabelMe: one ``.json`` per image, found recursively under the dataset root.

Shapes: ``polygon``, ``rectangle`` (two corners), ``circle`` (centre + a point on the circle, becomes a
32-gon) and ``mask`` (LabelMe >= 5.3: a base64 PNG of the shape's box). Other shape types (points,
lines) mark no region and are refused. The image is ``imagePath`` (relative to the JSON, backslashes
allowed) when that file exists inside the root, else the embedded base64 ``imageData``. A JSON with
no shapes is a normal image; ``flags`` set to true are image-level tags (see ``ImageRecord.tags``).
JSON files that are not LabelMe files (neither ``shapes`` nor ``imagePath``) are ignored.

Images kept apart from the JSONs: with ``images`` (a folder), an ``imagePath`` may lead into it, and one that
is not found (a Windows or absolute path of the annotator's machine) is looked up there by its file name.
Image files no JSON annotates (none refers to them, none has their relative path and stem) are returned as
unlabelled records (``ImageRecord.unlabelled``), searched in ``images`` or else under the root.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from syndgan.data import polygons
from syndgan.data.images import encode_mask, is_image_file
from syndgan.data.records import (
    SHAPE_MASK,
    SHAPE_POLYGON,
    Annotation,
    ErrorHandler,
    ImageRecord,
    check_inside,
    handle,
    join_inside,
)
from syndgan.errors import AnnotationError, DataError, PathEscapeError

log = logging.getLogger(__name__)


def find_json_files(root: Path) -> list[Path]:
    """All ``*.json`` under ``root`` in sorted order, skipping hidden folders (``.git``, checkpoints)."""
    return _visible_files(root, lambda p: p.suffix == ".json")


def _visible_files(root: Path, keep) -> list[Path]:
    root = Path(root)
    return sorted(
        p
        for p in root.rglob("*")
        if keep(p) and p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def read_labelme(
    root: str | Path, on_error: ErrorHandler | None = None, image_dir: str | Path | None = None
) -> list[ImageRecord]:
    root = Path(root).absolute()
    if not root.is_dir():
        raise DataError(root, "dataset root not found (labelme)")
    images = Path(image_dir).absolute() if image_dir is not None else None
    records = []
    rejected: dict[Path, Path] = {}  # a rejected JSON -> itself; the image it refers to -> the JSON
    jsons = find_json_files(root)
    for path in jsons:
        try:
            rec = read_labelme_file(path, root, images)
        except DataError as e:
            handle(e, on_error)  # raises unless skipping
            image = _referred_image(path, root, images)
            rejected[path] = path  # for its same-stem image
            if image is not None:
                rejected.setdefault(image.resolve(), path)
            else:
                log.warning("%s names no image that can be found: an image of it may be ingested as unlabelled", path)
            continue
        if rec is not None:
            records.append(rec)
    return records + _unlabelled(root, images, jsons, records, rejected, on_error)


def _unlabelled(
    root: Path,
    images: Path | None,
    jsons: list[Path],
    records: list[ImageRecord],
    rejected: dict[Path, Path],
    on_error: ErrorHandler | None,
) -> list[ImageRecord]:
    """Image files no JSON annotates. An image a JSON refers to (valid or not) or shares its stem with is never
    unlabelled: the image of a rejected JSON is a defect image as likely as not, so it is left out and reported,
    never taken for a normal."""
    folder = images or root
    annotated = {r.path.resolve() for r in records}
    stems = {p.relative_to(root).with_suffix(""): p for p in jsons}
    out = []
    for p in _visible_files(folder, is_image_file):
        real = p.resolve()
        if real in annotated:
            continue
        same_stem = stems.get(p.relative_to(folder).with_suffix(""))
        bad = rejected.get(real) or (rejected.get(same_stem) if same_stem is not None else None)
        if bad is not None:
            rel = bad.relative_to(root) if bad.is_relative_to(root) else bad  # a report that travels: no abs path
            handle(DataError(p, f"left out: its annotation {rel} was rejected"), on_error)
        elif same_stem is None:
            out.append(ImageRecord(path=p, unlabelled=True))
    return out


def _referred_image(path: Path, root: Path, images: Path | None) -> Path | None:
    """The image file a (rejected) JSON's ``imagePath`` names, if it can be told at all (a JSON cut short or
    otherwise broken usually still has its ``imagePath`` line)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            ref = json.loads(text).get("imagePath")
        except (ValueError, AttributeError):
            m = _IMAGE_PATH.search(text)
            ref = json.loads(f'"{m.group(1)}"') if m else None
        return _locate_image({"imagePath": ref}, path, root, images)[0] if isinstance(ref, str) and ref else None
    except (OSError, ValueError, DataError):
        return None


_IMAGE_PATH = re.compile(r'"imagePath"\s*:\s*"((?:[^"\\]|\\.)*)"')


def read_labelme_file(path: Path, root: Path, images: Path | None = None) -> ImageRecord | None:
    """One LabelMe JSON -> its record; None for a JSON that is not a LabelMe file."""
    check_inside(root, path, path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise AnnotationError(path, f"invalid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise AnnotationError(path, f"cannot read: {e}") from None
    if not isinstance(doc, dict) or not ({"shapes", "imagePath"} & set(doc)):
        log.info("%s: not a LabelMe file (no 'shapes'/'imagePath'), ignored", path)
        return None

    declared = None
    w, h = doc.get("imageWidth"), doc.get("imageHeight")
    if w is not None or h is not None:
        if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
            raise AnnotationError(path, f"imageWidth/imageHeight must be positive integers, got {w!r} x {h!r}")
        declared = (int(w), int(h))

    image_path, image_bytes = _locate_image(doc, path, root, images)
    shapes = doc.get("shapes") or []
    if not isinstance(shapes, list):
        raise AnnotationError(path, "'shapes' must be a list")
    annotations = [_shape(s, i, path, declared) for i, s in enumerate(shapes)]
    flags = doc.get("flags") or {}
    tags = sorted(k for k, v in flags.items() if v is True) if isinstance(flags, dict) else []
    return ImageRecord(
        path=image_path,
        annotations=annotations,
        image_bytes=image_bytes,
        declared_size=declared,
        annotation_file=path,
        tags=tags,
    )


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, float) and v.is_integer()


def _locate_image(doc: dict, path: Path, root: Path, images: Path | None) -> tuple[Path, bytes | None]:
    """The image file when it exists inside the root (or the images folder), else the embedded data (record
    path = the JSON)."""
    ref = doc.get("imagePath")
    data = doc.get("imageData")
    escape = None
    if ref:
        if not isinstance(ref, str):
            raise AnnotationError(path, f"imagePath must be a string, got {ref!r}")
        for home in (root, images) if images is not None else (root,):
            try:
                image_path = join_inside(home, path.parent, ref, path)
            except PathEscapeError as e:
                escape = escape or e
                continue
            if image_path.is_file():
                return image_path, None
        if images is not None:
            by_name = images / ref.replace("\\", "/").rsplit("/", 1)[-1]
            if by_name.is_file():
                return by_name, None
    if data:
        try:
            return path, base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError, TypeError):
            raise AnnotationError(path, "imageData is not valid base64") from None
    if escape is not None:
        raise escape
    if not ref:
        raise AnnotationError(path, "neither imagePath nor imageData given")
    raise AnnotationError(path, f"image {ref!r} not found (and no imageData embedded)")


def _points(shape: dict, i: int, path: Path) -> list[tuple[float, float]]:
    pts = shape.get("points")
    ok = isinstance(pts, list) and all(
        isinstance(p, (list, tuple))
        and len(p) == 2
        and all(isinstance(c, (int, float)) and not isinstance(c, bool) and np.isfinite(c) for c in p)
        for p in pts
    )
    if not ok:
        raise AnnotationError(path, f"shape {i} ({shape.get('label')!r}): points must be a list of [x, y] numbers")
    return [(float(x), float(y)) for x, y in pts]


def _shape(shape, i: int, path: Path, declared: tuple[int, int] | None) -> Annotation:
    if not isinstance(shape, dict):
        raise AnnotationError(path, f"shape {i} is not an object")
    label = shape.get("label")
    if not isinstance(label, str) or not label:
        raise AnnotationError(path, f"shape {i}: missing label")
    kind = shape.get("shape_type") or "polygon"  # old LabelMe versions leave it out for polygons
    pts = _points(shape, i, path)
    where = f"shape {i} ({label!r}, {kind})"
    if kind == "polygon":
        return Annotation(label, SHAPE_POLYGON, pts, source_file=path, where=f"shape {i}")
    if kind in ("rectangle", "circle"):
        if len(pts) != 2:
            raise AnnotationError(path, f"{where}: needs exactly 2 points, got {len(pts)}")
        poly = polygons.rectangle(*pts) if kind == "rectangle" else polygons.circle(*pts)
        if polygons.area(poly) == 0:
            raise AnnotationError(path, f"{where}: has zero area")
        return Annotation(label, SHAPE_POLYGON, poly, source_file=path, where=f"shape {i}")
    if kind == "mask":
        data = _mask_shape(shape, pts, where, path, declared)
        return Annotation(label, SHAPE_MASK, mask_bytes=data, source_file=path, where=f"shape {i}")
    raise AnnotationError(
        path, f"{where}: shape type {kind!r} marks no region (use polygon, rectangle, circle or mask)"
    )


def _mask_shape(shape: dict, pts, where: str, path: Path, declared: tuple[int, int] | None) -> bytes:
    """LabelMe ``mask`` shape: a boolean PNG of the box from points[0] to points[1], pasted full-size."""
    if declared is None:
        raise AnnotationError(path, f"{where}: mask shapes need imageWidth/imageHeight")
    if len(pts) != 2:
        raise AnnotationError(path, f"{where}: needs exactly 2 points (the mask's box), got {len(pts)}")
    try:
        with Image.open(io.BytesIO(base64.b64decode(shape.get("mask") or "", validate=True))) as im:
            box = np.asarray(im.convert("L")) > 0
    except Exception:
        raise AnnotationError(path, f"{where}: 'mask' is not a base64 image") from None
    x0, y0 = (int(v) for v in pts[0])
    bh, bw = box.shape
    w, h = declared
    if x0 < 0 or y0 < 0 or x0 + bw > w or y0 + bh > h:
        raise AnnotationError(path, f"{where}: mask box {bw}x{bh} at ({x0}, {y0}) exceeds the {w}x{h} image")
    full = np.zeros((h, w), bool)
    full[y0 : y0 + bh, x0 : x0 + bw] = box
    return encode_mask(full)
