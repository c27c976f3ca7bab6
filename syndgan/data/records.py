"""The common currency of every reader: one ``ImageRecord`` per image, with its ``Annotation`` regions.

Readers (LabelMe, COCO, CVAT, MVTec AD, Magnetic Tile, demo) only parse their format into these;
hashing, de-duplication, class mapping and splitting happen once, in ``syndgan.data.ingest``.
Coordinates are pixels of the full-resolution image, x right, y down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class ImageRecord:
    path: Path  # absolute path of the image file
    annotations: list[Annotation] = field(default_factory=list)
    label: str | None = None  # image-level class when the source states it (class folders); else derived
    group: str | None = None  # images sharing a group (e.g. illuminations of one part) share a split
    image_bytes: bytes | None = None  # embedded image data (LabelMe imageData); path is then the JSON file
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation claims; checked at ingest
    annotation_file: Path | None = None  # where the annotations came from, for error messages
