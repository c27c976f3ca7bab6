"""The common currency of every reader: one ``ImageRecord`` per image, with its ``Annotation`` regions.

Readers (LabelMe, COCO, CVAT, MVTec AD, Magnetic Tile, demo) only parse their format into these;
hashing, de-duplication, class mapping and splitting happen once, in ``syndgan.data.ingest``.
Coordinates are pixels of the full-resolution image, x right, y down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from syndgan.errors import DataError, PathEscapeError

NORMAL = "normal"

SHAPE_POLYGON = "polygon"  # points: closed polygon, >= 3 vertices (rectangles, circles, boxes become polygons)
SHAPE_MASK = "mask"  # mask_path: a grayscale mask image the size of the image, foreground > threshold


@dataclass
class Annotation:
    label: str  # class name as written in the source (mapped to a project class at ingest)
    shape: str  # SHAPE_POLYGON or SHAPE_MASK
    points: list[tuple[float, float]] = field(default_factory=list)
    mask_path: Path | None = None
    mask_threshold: int = 127  # mask pixels > threshold are foreground (soft masks)
    source_file: Path | None = None  # the annotation file this came from, for error messages
    where: str = ""  # its place in that file, for error messages ("shape 3", "annotation id 17")
    # A mask with no file of its own (decoded COCO/CVAT RLE, LabelMe "mask" shape): a PNG ("L", 0/255,
    # image-sized) held in memory; ingest writes it under its output folder and records that path.
    mask_bytes: bytes | None = None


@dataclass
class ImageRecord:
    path: Path  # absolute path of the image file
    annotations: list[Annotation] = field(default_factory=list)
    label: str | None = None  # image-level class when the source states it (class folders); else derived
    group: str | None = None  # images sharing a group (e.g. illuminations of one part) share a split
    image_bytes: bytes | None = None  # embedded image data (LabelMe imageData); path is then the JSON file
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation claims; checked at ingest
    annotation_file: Path | None = None  # where the annotations came from, for error messages
    # Image-level labels the source states besides shapes (LabelMe flags set true, CVAT tags). Ingest
    # uses those that name a class or "normal" (after the label map); others are metadata and ignored.
    tags: list[str] = field(default_factory=list)
    # No annotation at all (an image without a LabelMe JSON, a COCO image without annotations, a CVAT image
    # without shapes or tags): the source's ``unlabelled`` setting decides whether it is a normal image.
    unlabelled: bool = False
    split: str | None = None  # the split the dataset itself ships the image in (MVTec AD: train or test)


ErrorHandler = Callable[[DataError], None]


def handle(err: DataError, on_error: ErrorHandler | None) -> None:
    """Readers report a bad file here: raise it (``on_error`` is None) or hand it over and go on."""
    if on_error is None:
        raise err
    on_error(err)


_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:[\\/]|[\\/]{2})")


def join_inside(root: Path, base: Path, ref: str, referrer: Path) -> Path:
    """``base / ref`` for a path written in an annotation file, refused unless it stays inside ``root``.

    Backslashes (Windows tools) are read as separators. Absolute references are refused outright (they
    do not travel with the dataset); ``..`` is fine while the result, symlinks resolved, is under ``root``.
    The returned path is absolute and normalised but keeps symlinks (ids follow the dataset's own names).
    """
    rel = ref.replace("\\", "/")
    if rel.startswith("/") or _WINDOWS_ABS.match(ref):
        raise PathEscapeError(referrer, f"absolute path {ref!r} (paths must be relative to the dataset)")
    path = Path(os.path.normpath(Path(os.path.abspath(base)) / rel))
    check_inside(root, path, referrer, ref)
    return path


def dataset_image(root: Path, name: str, referrer: Path, images: Path | None = None) -> Path:
    """A COCO/CVAT ``file_name``: under ``images`` when the source names that folder, else ``root/name``, else
    ``root/images/name`` (the layout of many exports)."""
    if images is not None:
        return join_inside(images, images, name, referrer)
    path = join_inside(root, root, name, referrer)
    if not path.exists():
        alt = join_inside(root, root / "images", name, referrer)
        path = alt if alt.exists() else path
    return path


def check_inside(root: Path, path: Path, referrer: Path, ref: str | None = None) -> None:
    """Raise ``PathEscapeError`` when ``path`` (after resolving symlinks) is outside ``root``."""
    if not path.resolve().is_relative_to(Path(root).resolve()):
        what = f"path {ref!r}" if ref is not None else "file"
        raise PathEscapeError(referrer, f"{what} leads outside the dataset root {root}")
