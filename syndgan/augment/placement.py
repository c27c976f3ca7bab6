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

from syndgan.augment.deform import morph
from syndgan.augment.location import PositionSampler, sort_by_distance
from syndgan.augment.settings import PlacementSettings
from syndgan.augment.warping import Transform, _bbox, _Warped, _window, warp  # noqa: F401 (warp: the API's)


@dataclass
class DefectSource:
    """One real defect: all pixels of one class in one train image."""

    id: str
    class_id: int
    image: np.ndarray  # uint8 (H, W) or (H, W, C)
    mask: np.ndarray  # bool (H, W)
    fg: np.ndarray  # bool (H, W): foreground estimate of ``image``


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
