"""Mask diversity beyond the affine placement transform (issue 12, lever 2): with k = 10 real masks per class,
flips, rotations and scale alone repeat the same ten shapes. Three switches of ``PlacementSettings``, all off by
default (then no random number is drawn and placement is exactly what it was without them):

- ``elastic``: a smooth random displacement field (Gaussian-filtered noise scaled so that its largest
  displacement is ``alpha`` px) moves the mask *and* the source pixels and foreground under it, so copy-paste
  pastes the same warped defect that syndgan is told to paint.
- ``morph``: a random erosion or dilation by up to ``morph`` px. Erosion never removes a connected part of the
  mask (its innermost pixel stays), so a 1-px dust grain survives.
- ``recombine``: with this probability the mask is united with another mask of the same class (whole, or the
  part of it on one side of a random line through its centre), the two touching; that mask's source pixels
  and foreground come along, so the pair is one new defect source for every method.

All randomness comes from the generator placement passes in (seeded from the augment seed, the class and the
image number) or from a seed drawn from it and recorded with the placement.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # pragma: no cover
    from syndgan.augment.placement import DefectSource


def displacement(shape: tuple[int, int], alpha: float, sigma: float, seed: int) -> np.ndarray:
    """(2, H, W) smooth random displacement (rows, cols) whose largest vector is ``alpha`` px long."""
    noise = np.random.default_rng(seed).standard_normal((2, *shape))
    field = np.stack([ndimage.gaussian_filter(c, sigma, mode="reflect") for c in noise])
    peak = float(np.sqrt((field**2).sum(axis=0)).max())
    return field * (alpha / peak) if peak > 0 else field


def displace(array: np.ndarray, field: np.ndarray, order: int) -> np.ndarray:
    """``array`` (H, W) or (H, W, C) sampled at (row, col) + field: float32, zero where it samples outside."""
    coords = np.indices(field.shape[1:], dtype=np.float64) + field

    def one(a: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(a.astype(np.float32), coords, order=order, mode="constant", cval=0.0)

    if array.ndim == 3:
        return np.stack([one(array[..., c]) for c in range(array.shape[2])], axis=-1)
    return one(array)


def morph(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilate (radius > 0) or erode (< 0) by |radius| px; erosion keeps each connected part's innermost pixel.

    Computed on the mask's bounding box plus |radius| + 1 px (the result cannot reach further), not the whole array.
    """
    if radius == 0 or not mask.any():
        return mask.copy()
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    m = abs(radius) + 1
    win = (slice(max(0, rows[0] - m), rows[-1] + 1 + m), slice(max(0, cols[0] - m), cols[-1] + 1 + m))
    out = np.zeros_like(mask)
    if radius > 0:
        out[win] = ndimage.binary_dilation(mask[win], iterations=radius)
        return out
    out[win] = ndimage.binary_erosion(mask[win], iterations=-radius)
    parts, n = ndimage.label(mask[win], structure=np.ones((3, 3)))
    if not len(np.setdiff1d(np.arange(1, n + 1), np.unique(parts[out[win]]))):
        return out
    # A part vanished. Among its equally deep pixels scipy's maximum_position picks one through an unstable sort of
    # the whole array's depths (not the first in raster order): measured on the whole array, so the pick stays.
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    gone = np.setdiff1d(np.arange(1, n + 1), np.unique(parts[out]))
    depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
    for pos in ndimage.maximum_position(depth, parts, gone):
        out[pos] = True
    return out


def recombine(a: DefectSource, b: DefectSource, rng: np.random.Generator) -> DefectSource:
    """``a`` with (part of) ``b``'s defect laid over it, touching: a pixel of b's mask lands on a pixel of a's.

    b's pixels and foreground come along under b's mask; what falls outside a's image is dropped (the pixel that
    lands on a's mask never is, so the two always touch). The id lists both sources (provenance).
    """
    rows, cols = np.nonzero(b.mask)
    r0, r1, c0, c1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    part = b.mask[r0:r1, c0:c1].copy()
    if rng.random() < 0.5:  # partial: the side of a random line through b's centre
        angle = rng.uniform(0.0, 2.0 * math.pi)
        yy, xx = np.indices(part.shape)
        cy, cx = rows.mean() - r0, cols.mean() - c0
        half = part & ((yy - cy) * math.sin(angle) + (xx - cx) * math.cos(angle) >= 0)
        part = half if half.any() else part
    q = np.argwhere(part)[int(rng.integers(int(part.sum())))]
    p = np.argwhere(a.mask)[int(rng.integers(int(a.mask.sum())))]
    top, left = int(p[0] - q[0]), int(p[1] - q[1])
    H, W = a.mask.shape
    h, w = part.shape
    ys, xs = slice(max(top, 0), min(top + h, H)), slice(max(left, 0), min(left + w, W))
    crop = (slice(ys.start - top, ys.stop - top), slice(xs.start - left, xs.stop - left))
    sub = part[crop]
    image, mask, fg = a.image.copy(), a.mask.copy(), a.fg.copy()
    image[ys, xs][sub] = b.image[r0:r1, c0:c1][crop][sub]
    fg[ys, xs][sub] = b.fg[r0:r1, c0:c1][crop][sub]
    mask[ys, xs] |= sub
    ident = a.id if b.id == a.id else f"{a.id}|{b.id}"
    return dataclasses.replace(a, id=ident, image=image, mask=mask, fg=fg)
