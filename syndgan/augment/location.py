"""Where a class occurs (issue 12, lever 2): a placement prior learnt from the class's train masks.

A defect's position is summarised by one number: the distance from its mask's centroid to the nearest pixel
that is not object (background, or beyond the image border), over the image's shorter side; 0 is at an edge,
0.5 the centre of a square all-object image. Each real train defect of a class gives one such distance. With
``PlacementSettings.location_prior`` on, a surface defect's candidate positions are drawn at about the distance
of a randomly chosen train defect of its class (within ``BANDWIDTH``; the nearest distance the target offers
when none is that close): a class whose train defects sit at the edges of a tile (breaks) is placed at edges,
a class seen anywhere keeps being placed anywhere. Edge defects (object on part of their context ring) are
already aligned with object edges by the placement rule and do not use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

if TYPE_CHECKING:  # pragma: no cover
    from syndgan.augment.placement import DefectSource

BANDWIDTH = 0.02  # of the shorter image side: about 5 px at 256, 1 px at 48 (candidates are pixels)


def edge_distance(fg: np.ndarray) -> np.ndarray:
    """Per pixel: distance to the nearest non-object pixel or the image border, over the shorter side."""
    depth = ndimage.distance_transform_edt(np.pad(fg, 1))[1:-1, 1:-1]
    return (depth / float(min(fg.shape))).astype(np.float64)


def depth_at(fg: np.ndarray, y: int, x: int) -> float:
    """``distance_transform_edt(np.pad(fg, 1))`` at one pixel, without transforming the whole image: the distance to
    the nearest non-object pixel or the border (scipy's is the square root of the same integer squared distance)."""
    H, W = fg.shape
    if not fg[y, x]:
        return 0.0
    best = min(y + 1, x + 1, H - y, W - x)  # the padding beyond the border
    win = fg[max(0, y - best) : y + best + 1, max(0, x - best) : x + best + 1]  # nothing nearer lies outside
    bg = np.argwhere(~win)
    d2 = best * best
    if len(bg):
        d2 = min(d2, int(((bg - [min(y, best), min(x, best)]) ** 2).sum(axis=1).min()))
    return math.sqrt(d2)


def centroid_distance(mask: np.ndarray, fg: np.ndarray) -> float:
    cy, cx = (np.argwhere(mask).mean(axis=0) + 0.5).astype(int)
    return depth_at(fg, int(cy), int(cx)) / float(min(fg.shape))


def class_distances(sources: Sequence[DefectSource]) -> np.ndarray:
    """The class's empirical distribution: one distance per train defect, sorted."""
    return np.sort([centroid_distance(s.mask, s.fg) for s in sources])


def sort_by_distance(pool: np.ndarray, fg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pool`` ((N, 2) pixels) sorted (stably) by edge distance, and those distances."""
    d = edge_distance(fg)[pool[:, 0], pool[:, 1]] if len(pool) else np.zeros(0)
    order = np.argsort(d, kind="stable")
    return pool[order], d[order]


class PositionSampler:
    """Positions among ``pool`` ((N, 2) target pixels) at distances drawn from ``distances``."""

    def __init__(self, pool: np.ndarray, fg: np.ndarray, distances: np.ndarray):
        self.pool, self.d = sort_by_distance(pool, fg)
        self.distances = np.asarray(distances, np.float64)

    @classmethod
    def by_distance(cls, pool: np.ndarray, d: np.ndarray, distances: np.ndarray) -> PositionSampler:
        """From a pool already sorted by ``sort_by_distance`` (a target's, computed once for all its defects)."""
        self = cls.__new__(cls)
        self.pool, self.d, self.distances = pool, d, np.asarray(distances, np.float64)
        return self

    def __call__(self, rng: np.random.Generator) -> np.ndarray:
        want = self.distances[int(rng.integers(len(self.distances)))]
        lo = int(np.searchsorted(self.d, want - BANDWIDTH, side="left"))
        hi = int(np.searchsorted(self.d, want + BANDWIDTH, side="right"))
        if hi <= lo:  # nothing that close: the pixels at the nearest distance the target has
            near = self.d[int(np.argmin(np.abs(self.d - want)))]
            lo, hi = int(np.searchsorted(self.d, near, side="left")), int(np.searchsorted(self.d, near, side="right"))
        return self.pool[int(rng.integers(lo, hi))]
