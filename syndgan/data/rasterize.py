"""Polygons and masks -> class-coloured RGB maps and label maps at a working resolution.

Down-sampling uses exact area coverage: a working pixel takes the class that covers at least
``coverage`` of it. A defect that would vanish that way (a 4 px dust grain in a 2440 px image)
keeps its best-covered pixel, so no annotated defect is ever lost by resizing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from syndgan.errors import PairingError


@dataclass
class Region:
    """One annotated region: a polygon (full-resolution px) or a mask file; ``class_id`` >= 1."""

    class_id: int
    polygon: Sequence[Sequence[float]] | None = None
    mask_path: str | Path | None = None
    mask_threshold: int = 127


def region_mask(region: Region, width: int, height: int) -> np.ndarray:
    """Full-resolution boolean mask of a region."""
    if region.polygon is not None and len(region.polygon) >= 3:
        img = Image.new("L", (width, height), 0)
        # PIL fills pixels whose centres are inside; outline=1 keeps thin (1-2 px) slivers too.
        ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in region.polygon], fill=1, outline=1)
        return np.asarray(img, dtype=bool)
    if region.mask_path is not None:
        with Image.open(region.mask_path) as m:
            if m.size != (width, height):
                raise PairingError(region.mask_path, f"mask is {m.size[0]}x{m.size[1]}, image is {width}x{height}")
            return np.asarray(m.convert("L")) > region.mask_threshold
    return np.zeros((height, width), bool)


def _coverage(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Fraction of each output pixel covered by ``mask`` (exact box filter), shape (h, w)."""
    if mask.shape[::-1] == tuple(size):
        return mask.astype(np.float32)
    img = Image.fromarray(mask.astype(np.float32), mode="F")
    return np.asarray(img.resize(size, Image.Resampling.BOX), dtype=np.float32)


def rasterize_labelmap(
    regions: Sequence[Region],
    width: int,
    height: int,
    size: tuple[int, int] | None = None,
    coverage: float = 0.5,
) -> np.ndarray:
    """Label map (uint8, 0 = background, k = class id) of shape ``size[::-1]`` (default: native).

    Overlaps: the class with the larger coverage wins; ties go to the later region.
    """
    size = size or (width, height)
    out_w, out_h = size
    best = np.zeros((out_h, out_w), np.float32)
    labels = np.zeros((out_h, out_w), np.uint8)
    covs = []
    for r in regions:
        cov = _coverage(region_mask(r, width, height), size)
        covs.append(cov)
        take = (cov >= coverage) & (cov >= best)
        labels[take] = r.class_id
        best = np.maximum(best, np.where(take, cov, 0))
    for r, cov in zip(regions, covs, strict=True):
        if cov.max() > 0 and not ((labels == r.class_id) & (cov > 0)).any():
            y, x = np.unravel_index(int(np.argmax(cov)), cov.shape)
            labels[y, x] = r.class_id  # a tiny defect keeps its best-covered pixel
    return labels


def colorize(labels: np.ndarray, palette: dict[int, Sequence[int]]) -> np.ndarray:
    """RGB map (uint8, H x W x 3): each class id its colour, background black."""
    lut = np.zeros((256, 3), np.uint8)
    for k, color in palette.items():
        lut[k] = color
    return lut[labels]


def resize_image(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Anti-aliased resize of the photograph itself (the maps use coverage instead)."""
    if img.size == tuple(size):
        return img.copy()
    return img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
