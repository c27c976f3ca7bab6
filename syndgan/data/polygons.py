"""Polygon geometry for annotations: shape conversions and the validity checks run at ingest."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

Points = list[tuple[float, float]]

CIRCLE_VERTICES = 32  # circles and ellipses become regular 32-gons (area within 0.7 % of the true one)


def rectangle(p: Sequence[float], q: Sequence[float]) -> Points:
    """Axis-aligned rectangle from two opposite corners (any order), clockwise in image coordinates."""
    x0, x1 = sorted((float(p[0]), float(q[0])))
    y0, y1 = sorted((float(p[1]), float(q[1])))
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def ellipse(cx: float, cy: float, rx: float, ry: float, rotation_deg: float = 0.0, n: int = CIRCLE_VERTICES) -> Points:
    """Ellipse (rotation clockwise in image coordinates, y down) as an ``n``-gon through its boundary."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x, y = rx * np.cos(t), ry * np.sin(t)
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    return [(float(cx + c * a - s * b), float(cy + s * a + c * b)) for a, b in zip(x, y, strict=True)]


def circle(center: Sequence[float], on_circle: Sequence[float], n: int = CIRCLE_VERTICES) -> Points:
    """LabelMe circle: the centre and one point on the circle."""
    r = math.dist(center[:2], on_circle[:2])
    return ellipse(float(center[0]), float(center[1]), r, r, 0.0, n)


def rotated_box(x0: float, y0: float, x1: float, y1: float, rotation_deg: float = 0.0) -> Points:
    """CVAT box, rotated clockwise about its centre by ``rotation_deg``."""
    corners = rectangle((x0, y0), (x1, y1))
    if not rotation_deg:
        return corners
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    return [(cx + c * (x - cx) - s * (y - cy), cy + s * (x - cx) + c * (y - cy)) for x, y in corners]


def dedupe(points: Sequence[Sequence[float]]) -> Points:
    """Drop repeated consecutive vertices (double clicks) and an explicit closing vertex."""
    out: Points = []
    for p in points:
        q = (float(p[0]), float(p[1]))
        if not out or q != out[-1]:
            out.append(q)
    while len(out) > 1 and out[-1] == out[0]:
        out.pop()
    return out


def area(points: Sequence[Sequence[float]]) -> float:
    """Shoelace area (absolute)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 3:
        return 0.0
    x, y = p[:, 0], p[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


def self_intersection(points: Sequence[Sequence[float]]) -> tuple[int, int] | None:
    """First pair of edges (i, j) that cross or touch, or None for a simple polygon.

    Edge i runs from vertex i to vertex i+1 (wrapping). Non-adjacent edges may not meet at all;
    adjacent edges share their vertex but may not fold back onto each other (a zero-width spike).
    Vectorised over j, so O(n^2) work in O(n) numpy steps.
    """
    p = np.asarray(points, dtype=np.float64)
    n = len(p)
    if n < 3:
        return None
    a, b = p, np.roll(p, -1, axis=0)
    d = b - a
    eps = 1e-9 * (float(np.abs(p).max()) + 1.0) ** 2

    def orient(o, u, v):  # cross((u - o), (v - o)), broadcasting
        return (u[..., 0] - o[..., 0]) * (v[..., 1] - o[..., 1]) - (u[..., 1] - o[..., 1]) * (v[..., 0] - o[..., 0])

    def on_segment(o, u, v):  # v collinear with o-u: is it within the segment's box?
        return (
            (np.minimum(o[..., 0], u[..., 0]) - 1e-12 <= v[..., 0])
            & (v[..., 0] <= np.maximum(o[..., 0], u[..., 0]) + 1e-12)
            & (np.minimum(o[..., 1], u[..., 1]) - 1e-12 <= v[..., 1])
            & (v[..., 1] <= np.maximum(o[..., 1], u[..., 1]) + 1e-12)
        )

    for i in range(n):
        j = np.arange(i + 1, n)
        if len(j) == 0:
            break
        ai, bi = a[i], b[i]
        aj, bj = a[j], b[j]
        o1, o2 = orient(ai, bi, aj), orient(ai, bi, bj)
        o3, o4 = orient(aj, bj, ai), orient(aj, bj, bi)
        z1, z2, z3, z4 = (np.abs(o) <= eps for o in (o1, o2, o3, o4))
        cross = ((o1 > eps) & (o2 < -eps) | (o1 < -eps) & (o2 > eps)) & (
            (o3 > eps) & (o4 < -eps) | (o3 < -eps) & (o4 > eps)
        )
        touch = (
            z1 & on_segment(ai, bi, aj)
            | z2 & on_segment(ai, bi, bj)
            | z3 & on_segment(aj, bj, ai)
            | z4 & on_segment(aj, bj, bi)
        )
        adjacent = (j == i + 1) | ((i == 0) & (j == n - 1))
        # adjacent edges: only a fold-back (collinear, opposite directions) is a problem
        di, dj = d[i], d[j]
        parallel = np.abs(di[0] * dj[:, 1] - di[1] * dj[:, 0]) <= eps
        fold = parallel & ((di[0] * dj[:, 0] + di[1] * dj[:, 1]) < 0)
        bad = np.where(adjacent, fold, cross | touch)
        if bad.any():
            return i, int(j[np.argmax(bad)])
    return None
