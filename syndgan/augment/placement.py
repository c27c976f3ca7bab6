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
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from syndgan.augment.deform import displace, displacement, morph
from syndgan.augment.location import PositionSampler
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
    pixels: np.ndarray
    known: np.ndarray
    src_fg: np.ndarray
    ring: np.ndarray
    edge_pixels: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))


def ring_radius(mask: np.ndarray) -> int:
    """Context ring width: a quarter of the defect's equivalent diameter, at least 2 px."""
    diameter = 2.0 * math.sqrt(max(float(mask.sum()), 1.0) / math.pi)
    return max(2, int(math.ceil(0.25 * diameter)))


def warp(array: np.ndarray, transform: Transform, order: int, cval: float = 0.0) -> np.ndarray:
    """Apply ``transform`` about the array centre; the output is just large enough to hold the result."""
    h, w = array.shape[:2]
    fwd = transform.matrix()
    corners = np.array([[0, 0], [0, w], [h, 0], [h, w]], float) - [h / 2, w / 2]
    mapped = corners @ fwd.T
    out_h = max(1, int(math.ceil(np.ptp(mapped[:, 0]) - 1e-6)))
    out_w = max(1, int(math.ceil(np.ptp(mapped[:, 1]) - 1e-6)))
    inv = np.linalg.inv(fwd)
    # pixel centres sit at index + 0.5: in = inv @ (out + 0.5 - c_out) + c_in - 0.5
    offset = np.array([h / 2, w / 2]) - 0.5 - inv @ (np.array([out_h / 2, out_w / 2]) - 0.5)

    def one(a: np.ndarray) -> np.ndarray:
        return ndimage.affine_transform(
            a.astype(np.float32),
            inv,
            offset=offset,
            output_shape=(out_h, out_w),
            order=order,
            mode="grid-constant",
            cval=cval,
        )

    if array.ndim == 3:
        return np.stack([one(array[..., c]) for c in range(array.shape[2])], axis=-1)
    return one(array)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def make_patch(source: DefectSource, transform: Transform) -> _Patch:
    """Crop the source around its mask (with context), transform it and trim it to mask + ring."""
    radius = ring_radius(source.mask)
    # room for what the deformations move or grow (none when they are off)
    pad = radius + 2 + (int(math.ceil(transform.elastic[0])) if transform.elastic else 0) + max(transform.morph, 0)
    r0, r1, c0, c1 = _bbox(source.mask)
    H, W = source.mask.shape
    sl = (slice(max(0, r0 - pad), min(H, r1 + pad)), slice(max(0, c0 - pad), min(W, c1 + pad)))
    soft = warp(source.mask[sl].astype(np.float32), transform, order=1)
    known = warp(np.ones(source.mask[sl].shape, np.float32), transform, order=0)
    fg = warp(source.fg[sl].astype(np.float32), transform, order=0)
    pixels = warp(source.image[sl], transform, order=1)
    if transform.elastic:  # the mask, the pixels under it and what they sat on move together
        shift = displacement(soft.shape, *transform.elastic)
        soft, known, fg = displace(soft, shift, 1), displace(known, shift, 0), displace(fg, shift, 0)
        pixels = displace(pixels, shift, 1)
    mask = soft >= 0.5
    if not mask.any():  # a 1-px dust grain shrunk below half a pixel keeps its strongest pixel
        mask.flat[int(np.argmax(soft))] = True
    known = known > 0.5
    src_fg = (fg > 0.5) & known
    if transform.morph:  # grown only over source pixels that exist: they are what copy-paste pastes
        mask = morph(mask, transform.morph) & (known | mask)
    radius = ring_radius(mask)
    grown = ndimage.binary_dilation(mask, iterations=radius)
    ring = grown & ~mask & known
    keep = ndimage.binary_dilation(mask, iterations=radius + 1) & known | mask
    t0, t1, u0, u1 = _bbox(keep)
    crop = (slice(t0, t1), slice(u0, u1))
    patch = _Patch(mask[crop], pixels[crop], known[crop], src_fg[crop], ring[crop])
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


def place_defect(
    source: DefectSource,
    target_fg: np.ndarray,
    rng: np.random.Generator,
    settings: PlacementSettings,
    occupied: np.ndarray | None = None,
    edges: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> Placement | None:
    """Find a valid placement of ``source`` on a target with foreground ``target_fg``; None if ``tries`` fail.

    ``prior``: the edge distances of the class's train defects (``location.class_distances``); surface defects
    are then tried at such distances for the first half of the tries, anywhere on the object after that (a
    distance no position can satisfy does not make the class unplaceable).
    """
    H, W = target_fg.shape
    edges = target_edges(target_fg) if edges is None else edges
    fg_pixels = None
    sampler = None
    patch: _Patch | None = None
    transform = None
    for attempt in range(settings.tries):
        if attempt % 4 == 0:  # a few positions per transform: warping costs more than checking
            transform = random_transform(rng, settings)
            patch = make_patch(source, transform)
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
            if fg_pixels is None:
                fg_pixels = {True: np.argwhere(target_fg), False: np.argwhere(~target_fg)}
            pool = fg_pixels[bool(want)]
            if not len(pool):
                continue
            if want and prior is not None and len(prior) and attempt < max(1, settings.tries // 2):
                sampler = sampler or PositionSampler(pool, target_fg, prior)
                p = sampler(rng)
            else:
                p = pool[int(rng.integers(len(pool)))]
            cy, cx = (np.argwhere(patch.mask).mean(axis=0) + 0.5).astype(int)
            top, left = int(p[0] - cy), int(p[1] - cx)
        if not (0 <= top <= H - h and 0 <= left <= W - w):
            continue
        if occupied is not None:
            near = ndimage.binary_dilation(patch.mask, iterations=1)
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
