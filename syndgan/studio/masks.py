"""The studio's drawing -> a native-resolution label map, and back to LabelMe shapes.

A drawing is a list of operations applied in order: ``polygon`` (closed, filled with its class),
``brush`` (a stroke of discs of ``radius`` px along its points, painted with its class) and
``eraser`` (a stroke that clears every class). Polygons are filled exactly as ingest + rasterize
fill a LabelMe polygon (``syndgan.data.rasterize.region_mask``), so the region the network painted
is the region the saved annotation describes.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageDraw

from syndgan.data import polygons
from syndgan.data.images import encode_mask
from syndgan.data.rasterize import Region, region_mask
from syndgan.errors import SyndganError

TOOLS = ("polygon", "brush", "eraser")
MAX_OPS = 500
MAX_POINTS = 5000  # per operation
MAX_RADIUS = 512.0


class StudioError(SyndganError, ValueError):
    """A request the studio refuses: ``str(err)`` is ``"<field>: <problem>"`` on one line."""

    def __init__(self, field: str, problem: str, status: int = 400):
        self.field, self.problem, self.status = field, " ".join(str(problem).split()), status
        super().__init__(f"{field}: {self.problem}")


@dataclass(frozen=True)
class Op:
    tool: str
    class_id: int  # 0 for the eraser
    points: tuple[tuple[float, float], ...]
    radius: float = 0.0


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def parse_ops(raw, classes: list[dict], size: tuple[int, int]) -> list[Op]:
    """Validate the ``ops`` of a request against the classes and the image ``size`` (w, h)."""
    if not isinstance(raw, list) or not raw:
        raise StudioError("mask", "empty: draw a region (polygon or brush) first")
    if len(raw) > MAX_OPS:
        raise StudioError("ops", f"{len(raw)} operations, at most {MAX_OPS}")
    ids = {c["name"]: int(c["id"]) for c in classes}
    w, h = size
    ops = []
    for i, op in enumerate(raw):
        where = f"ops[{i}]"
        if not isinstance(op, dict):
            raise StudioError(where, "must be an object")
        tool = op.get("tool")
        if tool not in TOOLS:
            raise StudioError(f"{where}.tool", f"{tool!r} is not one of {', '.join(TOOLS)}")
        class_id = 0
        if tool != "eraser":
            name = op.get("class")
            if name not in ids:
                raise StudioError(f"{where}.class", f"unknown class {name!r}; classes: {', '.join(ids)}")
            class_id = ids[name]
        pts = op.get("points")
        if not isinstance(pts, list) or not pts or len(pts) > MAX_POINTS:
            raise StudioError(f"{where}.points", f"must be a list of 1..{MAX_POINTS} [x, y] pairs")
        for j, p in enumerate(pts):
            if not (isinstance(p, (list, tuple)) and len(p) == 2 and all(_number(c) for c in p)):
                raise StudioError(f"{where}.points[{j}]", f"{p!r} is not an [x, y] pair of numbers")
            if not (0 <= p[0] <= w and 0 <= p[1] <= h):
                raise StudioError(f"{where}.points[{j}]", f"({p[0]:g}, {p[1]:g}) is outside the {w}x{h} image")
        points = tuple((float(x), float(y)) for x, y in pts)
        radius = 0.0
        if tool == "polygon":
            _check_polygon(points, where)
        else:
            radius = op.get("radius")
            if not _number(radius) or not 0.5 <= radius <= MAX_RADIUS:
                raise StudioError(f"{where}.radius", f"must be a number in 0.5..{MAX_RADIUS:g} px, got {radius!r}")
        ops.append(Op(tool, class_id, points, float(radius)))
    return ops


def _check_polygon(points, where: str) -> None:
    """The checks ingest runs on a LabelMe polygon, so a saved result always ingests."""
    pts = polygons.dedupe(points)
    if len(pts) < 3:
        raise StudioError(f"{where}.points", f"a polygon needs >= 3 distinct points, got {len(pts)}")
    crossing = polygons.self_intersection(pts)
    if crossing is not None:
        raise StudioError(f"{where}.points", f"polygon crosses itself (edges {crossing[0]} and {crossing[1]})")
    if polygons.area(pts) <= 0:
        raise StudioError(f"{where}.points", "polygon has zero area")


def op_mask(op: Op, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if op.tool == "polygon":
        return region_mask(Region(op.class_id, polygon=op.points), w, h)
    img = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    r = op.radius
    if len(op.points) > 1:
        draw.line(op.points, fill=1, width=max(1, round(2 * r)))
    for x, y in op.points:  # round caps and joints
        draw.ellipse((x - r, y - r, x + r, y + r), fill=1)
    return np.asarray(img, dtype=bool)


def rasterize_ops(ops: list[Op], size: tuple[int, int]) -> np.ndarray:
    """Label map (H, W) uint8 at native resolution; later operations paint over earlier ones."""
    labels = np.zeros((size[1], size[0]), np.uint8)
    for op in ops:
        labels[op_mask(op, size)] = op.class_id
    return labels


def jitter_ops(ops: list[Op], seed: int, px: float, size: tuple[int, int], tries: int = 20) -> list[Op]:
    """A slightly different drawing: polygon vertices moved by up to ``px`` px, strokes shifted by whole px.

    Deterministic per seed; a jittered polygon that would cross itself is drawn again (after
    ``tries`` failures the drawn polygon is kept), so every variant stays a valid annotation.
    """
    if px <= 0:
        return list(ops)
    rng = np.random.default_rng(seed)
    w, h = size
    out = []
    for op in ops:
        pts = np.asarray(op.points, np.float64)
        new = op
        for _ in range(tries if op.tool == "polygon" else 1):
            if op.tool == "polygon":
                shift = rng.uniform(-px, px, pts.shape)
            else:  # a whole stroke moved by a fraction of a pixel often rasterizes the same: move it >= 1 px
                step = max(1, int(px))
                shift = np.zeros((1, 2))
                while not shift.any():
                    shift = rng.integers(-step, step + 1, (1, 2)).astype(np.float64)
            moved = pts + shift
            moved[:, 0] = moved[:, 0].clip(0, w)
            moved[:, 1] = moved[:, 1].clip(0, h)
            cand = replace(op, points=tuple((round(x, 2), round(y, 2)) for x, y in moved.tolist()))
            if op.tool != "polygon":
                new = cand
                break
            try:
                _check_polygon(cand.points, "jitter")
            except StudioError:
                continue
            new = cand
            break
        out.append(new)
    return out


def labelme_shapes(ops: list[Op], labels: np.ndarray, classes: list[dict]) -> list[dict]:
    """LabelMe shapes describing ``labels`` (the painted region).

    Polygons only: one ``polygon`` shape each, as drawn (overlaps: the later polygon wins, in the
    studio and in ingest alike). With brush or eraser strokes the region is no polygon: one LabelMe
    ``mask`` shape per class (its bounding box and a PNG of it), which ingest reads back exactly.
    """
    names = {int(c["id"]): c["name"] for c in classes}
    shape = {"group_id": None, "description": "", "flags": {}}
    if all(op.tool == "polygon" for op in ops):
        return [
            {"label": names[op.class_id], "points": [list(p) for p in op.points], "shape_type": "polygon", **shape}
            for op in ops
        ]
    out = []
    for k in sorted(int(v) for v in np.unique(labels) if v):
        fg = labels == k
        ys, xs = np.nonzero(fg)
        x0, y0, x1, y1 = int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())
        png = base64.b64encode(encode_mask(fg[y0 : y1 + 1, x0 : x1 + 1])).decode("ascii")
        out.append({"label": names[k], "points": [[x0, y0], [x1, y1]], "shape_type": "mask", "mask": png, **shape})
    return out
