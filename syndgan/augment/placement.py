"""Placing a real defect mask on a normal image: random flips, rotation, scale and translation, kept in
the image and in the *valid* part of it.

Validity rule (one rule for defects on the surface and at edges): the defect must see the same
object/background layout around it as where it came from. Around the transformed mask we take a
context ring (the mask dilated by ``ring_radius`` px, minus the mask itself), and compare the source
image's foreground estimate (``foreground.foreground_mask``), transformed with the mask, to the target
image's foreground on that ring. A placement is valid when the whole patch is inside the target image,
it overlaps no defect placed before, every defect pixel that lay on the object in the source lies on the
object in the target, and at least ``min_context_agreement`` of the ring pixels agree.
A bump or a dust grain (ring all object) therefore lands on the object, never on the fixture or off
the part; a chipping (ring half object, half background) lands on an object edge of matching
orientation. Candidate positions are drawn where they can pass: on target object pixels for surface
defects, on target edge pixels (aligned with a source edge pixel) for edge defects.

Beyond the affine transform, the mask may be deformed (``elastic``, ``morph``; see ``deform``) and surface
defects may be placed at the edge distances their class has in train (``location_prior``; see ``location``).

Cost (issue 32): a candidate transform is computed on the defect's neighbourhood only (``make_patch``), and what
placement derives from a target's foreground once per image (``Surface``), with the results of whole-image code.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from syndgan.augment.deform import displacement, morph
from syndgan.augment.location import PositionSampler, sort_by_distance
from syndgan.augment.settings import PlacementSettings


@dataclass
class DefectSource:
    """One real defect: all pixels of one class in one train image."""

    id: str
    class_id: int
    image: np.ndarray  # uint8 (H, W) or (H, W, C)
    mask: np.ndarray  # bool (H, W)
    fg: np.ndarray  # bool (H, W): foreground estimate of ``image``


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


@dataclass
class Placement:
    """A transformed defect patch at (top, left) of the target image; every array has the patch's shape."""

    source_id: str
    class_id: int
    transform: Transform
    top: int
    left: int
    mask: np.ndarray  # bool: defect pixels
    pixels: np.ndarray  # float32: the source image, transformed (copy-paste pastes these)
    known: np.ndarray  # bool: patch pixels that came from inside the source image
    src_fg: np.ndarray  # bool: source foreground, transformed
    ring: np.ndarray  # bool: context ring used for the validity check
    agreement: float = 1.0

    @property
    def slices(self) -> tuple[slice, slice]:
        h, w = self.mask.shape
        return slice(self.top, self.top + h), slice(self.left, self.left + w)

    def record(self) -> dict[str, Any]:
        """Provenance of this placement (JSON-able)."""
        t = self.transform
        return {
            "source": self.source_id,
            "flip_h": bool(t.flip_h),
            "flip_v": bool(t.flip_v),
            "angle": round(float(t.angle), 3),
            "scale": round(float(t.scale), 4),
            "top": int(self.top),
            "left": int(self.left),
            "height": int(self.mask.shape[0]),
            "width": int(self.mask.shape[1]),
            "context_agreement": round(float(self.agreement), 4),
            **({"elastic_seed": t.elastic[2]} if t.elastic else {}),
            **({"morph": t.morph} if t.morph else {}),
        }


@dataclass
class _Patch:
    mask: np.ndarray
    warp_pixels: Callable[[], np.ndarray]  # the pixels are warped only for the transform that gets placed
    known: np.ndarray
    src_fg: np.ndarray
    ring: np.ndarray
    edge_pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))

    @functools.cached_property
    def pixels(self) -> np.ndarray:
        return self.warp_pixels()


def ring_radius(mask: np.ndarray) -> int:
    """Context ring width: a quarter of the defect's equivalent diameter, at least 2 px."""
    diameter = 2.0 * math.sqrt(max(float(np.count_nonzero(mask)), 1.0) / math.pi)
    return max(2, int(math.ceil(0.25 * diameter)))


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


INDEX_LIMIT = 2**24  # float32 holds every integer below it


def make_patch(source: DefectSource, transform: Transform) -> _Patch:
    """Crop the source around its mask (with context), transform it and trim it to mask + ring.

    Only the defect's neighbourhood is computed (``_Warped``); the result is that of transforming the whole crop.
    """
    radius = ring_radius(source.mask)
    # room for what the deformations move or grow (none when they are off)
    pad = radius + 2 + (int(math.ceil(transform.elastic[0])) if transform.elastic else 0) + max(transform.morph, 0)
    sl = _window(_bbox(source.mask), pad, source.mask.shape)
    w = _Warped(source.mask[sl].shape, transform)
    soft = w.soft_mask(source.mask[sl])
    mask = soft >= 0.5
    if not mask.any():  # a 1-px dust grain shrunk below half a pixel keeps its strongest pixel
        mask.flat[int(np.argmax(soft))] = True
    grown = morph(mask, transform.morph) if transform.morph else mask
    # Everything below lies within radius + 1 px of the final mask (radius: its ring width, at most that of `grown`,
    # which holds it): the patch is cut from this window.
    win = _window(_bbox(grown), ring_radius(grown) + 1, mask.shape)
    known, fg = w.known_fg(source.fg[sl], win)
    m = grown[win]
    if transform.morph > 0:  # grown only over source pixels that exist: they are what copy-paste pastes
        m = m & (known | mask[win])
    radius = ring_radius(m)
    # the mask dilated `radius` times by a cross: the pixels within city-block distance radius (one transform)
    dist = ndimage.distance_transform_cdt(~m, metric="taxicab")
    ring = (dist <= radius) & ~m & known
    keep = (dist <= radius + 1) & known | m
    t0, t1, u0, u1 = _bbox(keep)
    crop = (slice(t0, t1), slice(u0, u1))
    out = (slice(win[0].start + t0, win[0].start + t1), slice(win[1].start + u0, win[1].start + u1))
    image = source.image[sl]

    def pixels() -> np.ndarray:
        """The transformed source pixels of the patch (float32), warped only once a placement is accepted."""
        planes = [image[..., c] for c in range(image.shape[2])] if image.ndim == 3 else [image]
        warped = [w.window(p.astype(np.float32), out, 1) for p in planes]
        return np.stack(warped, axis=-1) if image.ndim == 3 else warped[0]

    patch = _Patch(m[crop], pixels, known[crop], fg[crop] & known[crop], ring[crop])
    # source edge pixels on the ring: where the object/background boundary passes the defect
    fg = patch.src_fg
    edge = patch.ring & fg & ~ndimage.binary_erosion(fg, border_value=1)
    patch.edge_pixels = np.argwhere(edge)
    return patch


def random_transform(rng: np.random.Generator, s: PlacementSettings) -> Transform:
    angle = 90.0 * int(rng.integers(4)) if s.rotate90 else 0.0
    angle += float(rng.uniform(-s.max_rotation, s.max_rotation)) if s.max_rotation > 0 else 0.0
    lo, hi = (float(v) for v in s.scale)
    t = Transform(
        flip_h=bool(rng.random() < 0.5) if s.flip else False,
        flip_v=bool(rng.random() < 0.5) if s.flip else False,
        angle=angle,
        scale=float(rng.uniform(lo, hi)) if hi > lo else lo,
    )
    # drawn after the affine part and only when on: with the switches off the draws are those of before
    if s.elastic.alpha > 0:
        t.elastic = (float(s.elastic.alpha), float(s.elastic.sigma), int(rng.integers(2**31 - 1)))
    if s.morph > 0:
        t.morph = int(rng.integers(-s.morph, s.morph + 1))
    return t


def target_edges(fg: np.ndarray) -> np.ndarray:
    """(N, 2) object-boundary pixels of a target foreground (the image border is not an edge)."""
    return np.argwhere(fg & ~ndimage.binary_erosion(fg, border_value=1))


def context_agreement(patch: _Patch, target_fg: np.ndarray, top: int, left: int) -> float:
    h, w = patch.mask.shape
    if not patch.ring.any():
        return 1.0
    region = target_fg[top : top + h, left : left + w]
    return float((region[patch.ring] == patch.src_fg[patch.ring]).mean())


class Surface:
    """A target image's foreground and what placement derives from it, each computed once per image (on first use),
    not once per placed defect: the object edges, the object / background pixels, and the object pixels ordered
    by their distance to the nearest edge (the location prior's candidates)."""

    def __init__(self, fg: np.ndarray, edges: np.ndarray | None = None):
        self.fg = fg
        self.edges = target_edges(fg) if edges is None else edges
        self._pixels: dict[bool, np.ndarray] = {}
        self._by_distance: tuple[np.ndarray, np.ndarray] | None = None

    def pixels(self, on_object: bool) -> np.ndarray:
        """(N, 2) object (or background) pixels, in raster order."""
        if on_object not in self._pixels:
            self._pixels[on_object] = np.argwhere(self.fg if on_object else ~self.fg)
        return self._pixels[on_object]

    def by_edge_distance(self) -> tuple[np.ndarray, np.ndarray]:
        """The object pixels sorted (stably) by edge distance, and those distances."""
        if self._by_distance is None:
            self._by_distance = sort_by_distance(self.pixels(True), self.fg)
        return self._by_distance


def place_defect(
    source: DefectSource,
    target: np.ndarray | Surface,
    rng: np.random.Generator,
    settings: PlacementSettings,
    occupied: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> Placement | None:
    """Find a valid placement of ``source`` on a target (its foreground, or its ``Surface`` when it gets several
    defects: what is derived from the foreground is then computed once); None if ``tries`` fail.

    ``prior``: the edge distances of the class's train defects (``location.class_distances``); surface defects
    are then tried at such distances for the first half of the tries, anywhere on the object after that (a
    distance no position can satisfy does not make the class unplaceable).
    """
    surface = target if isinstance(target, Surface) else Surface(target, edges)
    target_fg, edges = surface.fg, surface.edges
    H, W = target_fg.shape
    sampler = None
    patch: _Patch | None = None
    transform = near = None
    for attempt in range(settings.tries):
        if attempt % 4 == 0:  # a few positions per transform: warping costs more than checking
            transform = random_transform(rng, settings)
            patch = make_patch(source, transform)
            near = None
        h, w = patch.mask.shape
        if h > H or w > W:
            continue
        ring_fg = patch.src_fg[patch.ring].mean() if patch.ring.any() else 1.0
        if 0.1 < ring_fg < 0.9 and len(patch.edge_pixels) and len(edges):
            b = edges[int(rng.integers(len(edges)))]  # an edge defect: align a source edge pixel with a target edge
            s = patch.edge_pixels[int(rng.integers(len(patch.edge_pixels)))]
            top, left = int(b[0] - s[0]), int(b[1] - s[1])
        else:
            want = ring_fg >= 0.5
            pool = surface.pixels(bool(want))
            if not len(pool):
                continue
            if want and prior is not None and len(prior) and attempt < max(1, settings.tries // 2):
                sampler = sampler or PositionSampler.by_distance(*surface.by_edge_distance(), prior)
                p = sampler(rng)
            else:
                p = pool[int(rng.integers(len(pool)))]
            cy, cx = (np.argwhere(patch.mask).mean(axis=0) + 0.5).astype(int)
            top, left = int(p[0] - cy), int(p[1] - cx)
        if not (0 <= top <= H - h and 0 <= left <= W - w):
            continue
        if occupied is not None:
            near = ndimage.binary_dilation(patch.mask, iterations=1) if near is None else near
            if occupied[top : top + h, left : left + w][near].any():
                continue
        on_object = patch.mask & patch.src_fg  # defect pixels that sat on the object must land on it
        if not target_fg[top : top + h, left : left + w][on_object].all():
            continue
        score = context_agreement(patch, target_fg, top, left)
        if score >= settings.min_context_agreement:
            return Placement(
                source.id,
                source.class_id,
                transform,
                top,
                left,
                patch.mask,
                patch.pixels,
                patch.known,
                patch.src_fg,
                patch.ring,
                score,
            )
    return None


def compose_labelmap(shape: tuple[int, int], placements: Sequence[Placement]) -> np.ndarray:
    """uint8 label map (0 background, class id on each placed mask)."""
    labels = np.zeros(shape, np.uint8)
    for p in placements:
        region = labels[p.slices]
        region[p.mask] = p.class_id
    return labels


def appearance(image: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Descriptor for matching a defect source to a normal image: per-channel mean and std on the object."""
    img = np.asarray(image, np.float32) / 255.0
    img = img[..., None] if img.ndim == 2 else img
    px = img[fg] if fg.any() else img.reshape(-1, img.shape[-1])
    return np.concatenate([px.mean(axis=0), px.std(axis=0)])


def nearest_sources(target: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` candidates nearest to ``target`` (all when k is 0 or >= len)."""
    if k <= 0 or k >= len(candidates):
        return np.arange(len(candidates))
    d = np.linalg.norm(candidates - target[None], axis=1)
    return np.argsort(d, kind="stable")[:k]
