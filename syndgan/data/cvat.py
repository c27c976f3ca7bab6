"""CVAT for images XML (``annotations.xml``): ``<image name= width= height=>`` with its shapes.

Shapes: ``<polygon points="x,y;x,y;...">``, ``<box xtl= ytl= xbr= ybr= rotation=>``, ``<ellipse cx= cy=
rx= ry= rotation=>`` (a 32-gon) and ``<mask rle= left= top= width= height=>`` (CVAT's row-major RLE
inside the box, decoded to an in-memory mask). ``<tag label=>`` is an image-level tag. Polylines,
points, cuboids and skeletons mark no region and are refused. ``name`` is relative to the dataset
root (``<root>/images/<name>`` is tried too: CVAT's export layout), or to the source's ``images`` folder
when it names one. An image without shapes or tags is unlabelled (``ImageRecord.unlabelled``). A problem
with one image drops that image; an unreadable file drops the whole file.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from syndgan.data import polygons
from syndgan.data.coco import rle_decode
from syndgan.data.images import encode_mask
from syndgan.data.records import SHAPE_MASK, SHAPE_POLYGON, Annotation, ErrorHandler, ImageRecord, dataset_image, handle
from syndgan.errors import AnnotationError, DataError

_NO_REGION = ("polyline", "points", "cuboid", "skeleton")


def read_cvat(
    root: str | Path, annotations: str | Path, on_error: ErrorHandler | None = None, image_dir: str | Path | None = None
) -> list[ImageRecord]:
    root = Path(root).absolute()
    image_dir = Path(image_dir).absolute() if image_dir is not None else None
    if not root.is_dir():
        raise DataError(root, "dataset root not found (cvat)")
    xml_file = Path(annotations)
    xml_file = xml_file if xml_file.is_absolute() else root / xml_file
    try:
        tree = ET.parse(xml_file)
    except ET.ParseError as e:
        handle(AnnotationError(xml_file, f"invalid XML: {e}"), on_error)
        return []
    except OSError as e:
        handle(AnnotationError(xml_file, f"cannot read: {e.strerror or e}"), on_error)
        return []
    top = tree.getroot()
    images = top.findall("image")
    if top.tag != "annotations" or (not images and top.find("track") is not None):
        handle(
            AnnotationError(xml_file, "not a 'CVAT for images' file (CVAT for video tracks are not supported)"),
            on_error,
        )
        return []
    records, seen = [], {}
    for k, el in enumerate(images):
        name = el.get("name")
        try:
            if not name:
                raise AnnotationError(xml_file, f"<image> number {k + 1} has no name")
            if name in seen:
                raise AnnotationError(xml_file, f"image {name!r} is listed twice")
            seen[name] = k
            records.append(_record(el, name, root, xml_file, image_dir))
        except DataError as e:
            handle(e, on_error)
    return sorted(records, key=lambda r: str(r.path))


def _float(el: ET.Element, attr: str, ctx: str, xml_file: Path, default: float | None = None) -> float:
    v = el.get(attr)
    if v is None and default is not None:
        return default
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise AnnotationError(xml_file, f"{ctx}: attribute {attr}={v!r} is not a number") from None
    if not np.isfinite(x):
        raise AnnotationError(xml_file, f"{ctx}: attribute {attr}={v!r} is not finite")
    return x


def _record(el: ET.Element, name: str, root: Path, xml_file: Path, image_dir: Path | None) -> ImageRecord:
    path = dataset_image(root, name, xml_file, image_dir)
    ctx = f"image {name!r}"
    declared = None
    if el.get("width") is not None or el.get("height") is not None:
        w, h = _float(el, "width", ctx, xml_file), _float(el, "height", ctx, xml_file)
        if not (w.is_integer() and h.is_integer() and w > 0 and h > 0):
            raise AnnotationError(xml_file, f"{ctx}: width/height must be positive integers")
        declared = (int(w), int(h))
    annotations, tags = [], []
    for i, sh in enumerate(el):
        label = sh.get("label")
        where = f"<{sh.tag}> {i + 1}"
        sctx = f"{ctx}: {where} ({label!r})"
        if not label:
            raise AnnotationError(xml_file, f"{ctx}: {where} has no label")
        common = {"source_file": xml_file, "where": where}
        if sh.tag == "tag":
            tags.append(label)
        elif sh.tag == "polygon":
            annotations.append(Annotation(label, SHAPE_POLYGON, _points(sh.get("points"), sctx, xml_file), **common))
        elif sh.tag == "box":
            x0, y0, x1, y1 = (_float(sh, a, sctx, xml_file) for a in ("xtl", "ytl", "xbr", "ybr"))
            if x1 <= x0 or y1 <= y0:
                raise AnnotationError(xml_file, f"{sctx}: box has no area")
            rot = _float(sh, "rotation", sctx, xml_file, default=0.0)
            annotations.append(Annotation(label, SHAPE_POLYGON, polygons.rotated_box(x0, y0, x1, y1, rot), **common))
        elif sh.tag == "ellipse":
            cx, cy, rx, ry = (_float(sh, a, sctx, xml_file) for a in ("cx", "cy", "rx", "ry"))
            if rx <= 0 or ry <= 0:
                raise AnnotationError(xml_file, f"{sctx}: ellipse has no area")
            rot = _float(sh, "rotation", sctx, xml_file, default=0.0)
            annotations.append(Annotation(label, SHAPE_POLYGON, polygons.ellipse(cx, cy, rx, ry, rot), **common))
        elif sh.tag == "mask":
            annotations.append(Annotation(label, SHAPE_MASK, mask_bytes=_mask(sh, sctx, xml_file, declared), **common))
        elif sh.tag in _NO_REGION:
            raise AnnotationError(xml_file, f"{sctx}: <{sh.tag}> marks no region (use polygon, box, ellipse or mask)")
        else:
            raise AnnotationError(xml_file, f"{sctx}: unknown element <{sh.tag}>")
    return ImageRecord(
        path=path,
        annotations=annotations,
        declared_size=declared,
        annotation_file=xml_file,
        tags=tags,
        unlabelled=not annotations and not tags,
    )


def _points(text: str | None, ctx: str, xml_file: Path) -> list[tuple[float, float]]:
    try:
        pts = [tuple(float(v) for v in p.split(",")) for p in (text or "").strip().split(";") if p.strip()]
    except ValueError:
        pts = None
    if not pts or any(len(p) != 2 or not all(np.isfinite(p)) for p in pts):
        raise AnnotationError(xml_file, f"{ctx}: points must be 'x,y;x,y;...', got {text!r}")
    return [(p[0], p[1]) for p in pts]


def _mask(sh: ET.Element, ctx: str, xml_file: Path, declared: tuple[int, int] | None) -> bytes:
    if declared is None:
        raise AnnotationError(xml_file, f"{ctx}: masks need the image's width and height")
    left, top, bw, bh = (_float(sh, a, ctx, xml_file) for a in ("left", "top", "width", "height"))
    if not all(v.is_integer() for v in (left, top, bw, bh)):
        raise AnnotationError(xml_file, f"{ctx}: mask box must be whole pixels")
    left, top, bw, bh = int(left), int(top), int(bw), int(bh)
    w, h = declared
    if left < 0 or top < 0 or bw <= 0 or bh <= 0 or left + bw > w or top + bh > h:
        raise AnnotationError(xml_file, f"{ctx}: mask box {bw}x{bh} at ({left}, {top}) is outside the {w}x{h} image")
    try:
        counts = [int(c) for c in (sh.get("rle") or "").split(",")]
        box = rle_decode(counts, bh, bw, order="C")
    except ValueError as e:
        raise AnnotationError(xml_file, f"{ctx}: bad RLE: {e}") from None
    full = np.zeros((h, w), bool)
    full[top : top + bh, left : left + bw] = box
    return encode_mask(full)
