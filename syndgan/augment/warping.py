"""The geometry of a placed defect: its ``Transform`` (flips, rotation, scale, elastic field, morphology) and the
warps that apply it, computed on the defect's neighbourhood only (issue 32: a 900 px image's candidate patch costs
what its defect's window costs), with the values whole-image code gives, bit for bit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from syndgan.augment.deform import displacement

INDEX_LIMIT = 2**24  # float32 holds every integer below it


@dataclass
class Transform:
    flip_h: bool = False
    flip_v: bool = False
    angle: float = 0.0  # degrees
    scale: float = 1.0
    elastic: tuple[float, float, int] | None = None  # (alpha, sigma, seed) of a displacement field after the above
    morph: int = 0  # then dilate (> 0) or erode (< 0) the mask by this many px

    def matrix(self) -> np.ndarray:
        """Forward 2x2 map in (row, col) coordinates: flip, then rotate, then scale."""
        flip = np.diag([-1.0 if self.flip_v else 1.0, -1.0 if self.flip_h else 1.0])
        a = math.radians(self.angle)
        rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
        return self.scale * rot @ flip


def _geometry(shape: tuple[int, int], transform: Transform) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """``warp``'s output shape and its inverse map: output (row, col) -> input inv @ out + offset."""
    h, w = shape
    fwd = transform.matrix()
    corners = np.array([[0, 0], [0, w], [h, 0], [h, w]], float) - [h / 2, w / 2]
    mapped = corners @ fwd.T
    out_h = max(1, int(math.ceil(np.ptp(mapped[:, 0]) - 1e-6)))
    out_w = max(1, int(math.ceil(np.ptp(mapped[:, 1]) - 1e-6)))
    inv = np.linalg.inv(fwd)
    # pixel centres sit at index + 0.5: in = inv @ (out + 0.5 - c_out) + c_in - 0.5
    offset = np.array([h / 2, w / 2]) - 0.5 - inv @ (np.array([out_h / 2, out_w / 2]) - 0.5)
    return (out_h, out_w), inv, offset


def warp(array: np.ndarray, transform: Transform, order: int, cval: float = 0.0) -> np.ndarray:
    """Apply ``transform`` about the array centre; the output is just large enough to hold the result."""
    shape, inv, offset = _geometry(array.shape[:2], transform)

    def one(a: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(
            a.astype(np.float32), inv, offset=offset, output_shape=shape, order=order, mode="grid-constant", cval=cval
        )

    if array.ndim == 3:
        return np.stack([one(array[..., c]) for c in range(array.shape[2])], axis=-1)
    return one(array)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _grow(mask: np.ndarray, k: int) -> np.ndarray:
    """``mask`` dilated by a (2k+1)-px square (two 1-D running maxima: cheap for any k)."""
    m = ndimage.maximum_filter1d(mask.view(np.uint8), 2 * k + 1, axis=0, mode="constant")
    return ndimage.maximum_filter1d(m, 2 * k + 1, axis=1, mode="constant").view(bool)


def _window(box: tuple[int, int, int, int], margin: int, shape: tuple[int, ...]) -> tuple[slice, slice]:
    """The box grown by ``margin`` px, inside ``shape``."""
    r0, r1, c0, c1 = box
    rows = slice(max(0, r0 - margin), min(shape[0], r1 + margin))
    return rows, slice(max(0, c0 - margin), min(shape[1], c1 + margin))


def _grid(win: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of every pixel of a window, flat, in raster order."""
    rows, cols = np.mgrid[win]
    return rows.ravel(), cols.ravel()


def _size(win: tuple[slice, slice]) -> tuple[int, int]:
    return win[0].stop - win[0].start, win[1].stop - win[1].start


def _affine_coords(inv: np.ndarray, offset: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """The input coordinates ``affine_transform`` computes for output pixels (rows, cols), to the last bit: in the
    order scipy's C loop adds them up (found by ``_scipy_sum_order``; None when it is neither known order)."""
    first = _scipy_sum_order()
    if first is None:
        return None
    r, c = rows.astype(np.float64), cols.astype(np.float64)
    if first:  # offset + row * m0 + col * m1 (scipy 1.17)
        return np.stack([offset[h] + r * inv[h, 0] + c * inv[h, 1] for h in (0, 1)])
    return np.stack([0.0 + r * inv[h, 0] + c * inv[h, 1] + offset[h] for h in (0, 1)])


@functools.cache
def _scipy_sum_order() -> bool | None:
    """Whether this scipy's affine loop starts from the offset (True) or adds it last (False): the two differ in the
    last bit now and then, which can move a nearest-neighbour pick. Found once by warping a ramp both ways."""
    rng = np.random.default_rng(0)
    ramp = np.add.outer(np.arange(48.0), 0.001 * np.arange(48.0) ** 2)  # each position its own value
    rows, cols = (g.ravel().astype(np.float64) for g in np.mgrid[0:48, 0:48])
    fits = {True: True, False: True}
    for _ in range(8):
        inv = rng.uniform(-1.5, 1.5, (2, 2))
        offset = rng.uniform(-5, 5, 2)
        want = ndimage.affine_transform(ramp, inv, offset=offset, order=1, mode="grid-constant").ravel()
        for first in fits:
            if first:
                coords = np.stack([offset[h] + rows * inv[h, 0] + cols * inv[h, 1] for h in (0, 1)])
            else:
                coords = np.stack([0.0 + rows * inv[h, 0] + cols * inv[h, 1] + offset[h] for h in (0, 1)])
            got = ndimage.map_coordinates(ramp, coords, order=1, mode="grid-constant")
            fits[first] &= bool(np.array_equal(got, want))
    return True if fits[True] else (False if fits[False] else None)


class _Warped:
    """The source crop as ``make_patch`` transforms it (``warp``, then ``displace`` by the elastic field), evaluated
    only where asked: the defect and its surroundings, not the whole warped crop (mostly empty: a source mask is every
    pixel of its class in the image, often far-apart parts).

    Values are bit for bit those of transforming the whole crop: scipy's own interpolation at the same coordinates,
    the affine ones added up as scipy's C loop does (``_affine_coords``), and each value depends only on its
    coordinates and the pixels next to them. The elastic field is still drawn and smoothed at the
    whole warped size: its random numbers and its scale (largest displacement over the whole field) stay the same.
    """

    def __init__(self, shape: tuple[int, int], transform: Transform):
        self.shape, self.inv, self.offset = _geometry(shape, transform)
        self.fwd = transform.matrix()
        self.field = displacement(self.shape, *transform.elastic) if transform.elastic else None
        # the farthest a displaced pixel reads from itself: alpha (+ rounding), + 1 for the bilinear neighbour
        self.reach = int(math.ceil(transform.elastic[0])) + 2 if transform.elastic else 0

    def affine_at(self, a: np.ndarray, rows: np.ndarray, cols: np.ndarray, order: int) -> np.ndarray:
        """``warp(a)[rows, cols]`` of a 2-D float32 ``a``."""
        coords = _affine_coords(self.inv, self.offset, rows, cols)
        if coords is None:  # a scipy that adds coordinates up some other way: warp all, keep what was asked
            return ndimage.affine_transform(
                a, self.inv, offset=self.offset, output_shape=self.shape, order=order, mode="grid-constant"
            )[rows, cols]
        return ndimage.map_coordinates(a, coords, order=order, mode="grid-constant", cval=0.0)

    def displace_at(self, warped: np.ndarray, rows: np.ndarray, cols: np.ndarray, order: int) -> np.ndarray:
        """``displace(warped, field)[rows, cols]``: ``warped`` needs its true values within ``reach`` px only."""
        coords = np.stack([rows + self.field[0, rows, cols], cols + self.field[1, rows, cols]])
        return ndimage.map_coordinates(warped, coords, order=order, mode="constant", cval=0.0)

    def window(self, a: np.ndarray, win: tuple[slice, slice], order: int) -> np.ndarray:
        """The transformed crop ``a`` (2-D float32) on a window of the output."""
        if self.field is None:
            return self.affine_at(a, *_grid(win), order).reshape(_size(win))
        around = _window((win[0].start, win[0].stop, win[1].start, win[1].stop), self.reach, self.shape)
        warped = np.zeros(self.shape, np.float32)
        warped[around] = self.affine_at(a, *_grid(around), order).reshape(_size(around))
        return self.displace_at(warped, *_grid(win), order).reshape(_size(win))

    def soft_mask(self, mask: np.ndarray) -> np.ndarray:
        """The transformed ``mask`` (bilinear, float32, whole output shape), computed only near the defect.

        A warped value is non-zero only within 1 input px of a mask pixel, i.e. within ``|fwd|`` output px of where
        that pixel lands, and the displacement reads at most ``reach`` px away: everywhere else the whole-crop
        computation gives exact zeros, the zeros left here.
        """
        land = (np.argwhere(mask) - self.offset) @ self.fwd.T
        land = np.clip(np.rint(land).astype(np.int64), 0, np.array(self.shape) - 1)
        near = np.zeros(self.shape, bool)
        near[land[:, 0], land[:, 1]] = True
        rows, cols = np.nonzero(_grow(near, int(math.ceil(np.abs(self.fwd).sum(axis=1).max() + 0.5)) + 1))
        soft = np.zeros(self.shape, np.float32)
        soft[rows, cols] = self.affine_at(mask.astype(np.float32), rows, cols, 1)
        if self.field is None:
            return soft
        rows, cols = np.nonzero(_grow(soft != 0, self.reach))
        out = np.zeros(self.shape, np.float32)
        out[rows, cols] = self.displace_at(soft, rows, cols, 1)
        return out

    def known_fg(self, fg: np.ndarray, win: tuple[slice, slice]) -> tuple[np.ndarray, np.ndarray]:
        """On a window of the output: came from inside the source crop (``known``), and the source foreground ``fg``
        there. Both are order-0 warps, i.e. show one source pixel each: warping the pixel numbers 1..n (exact in
        float32 below ``INDEX_LIMIT``; 0: outside) finds it for both in one interpolation instead of four."""
        if fg.size >= INDEX_LIMIT:  # a huge crop: one interpolation each
            known = self.window(np.ones(fg.shape, np.float32), win, 0) > 0.5
            return known, (self.window(fg.astype(np.float32), win, 0) > 0.5) & known
        ids = np.arange(1, fg.size + 1, dtype=np.float32).reshape(fg.shape)
        idx = self.window(ids, win, 0).astype(np.int64) - 1
        known = idx >= 0
        shown = np.zeros(idx.shape, bool)
        shown[known] = fg.ravel()[idx[known]]
        return known, shown
