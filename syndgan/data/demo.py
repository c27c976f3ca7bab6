"""A deterministic, insert-like inspection dataset (in the spirit of the paper's Figure 3).

Each *part* is a textured metal surface crop with an edge and a rounded corner of a cutting insert,
imaged under four illuminations: bright field, dark field, coaxial and backlight. The same defect
looks different under each light (a bump is a highlight in bright field, a dark ring under coaxial
light...), as in the paper. Defect classes: ``bump``, ``chipping`` (a notch broken out of the edge)
and ``dust`` (small particles, down to ``min_defect_px``). Annotations are LabelMe polygons, the
format a real annotation tool produces; the polygons are exactly what was rendered.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

ILLUMINATIONS = ("bright", "dark", "coaxial", "backlight")
CLASSES = ("bump", "chipping", "dust")
# Per-illumination RGB tint: the four lights are different sources on a real inspection station.
_TINT = {
    "bright": (1.00, 0.97, 0.90),
    "dark": (0.85, 0.92, 1.00),
    "coaxial": (0.97, 0.98, 1.00),
    "backlight": (1.00, 0.93, 0.82),
}


@dataclass
class DemoSettings:
    """The demo dataset: the schema of the ``demo`` section of params.yaml (the stage adds ``out``)."""

    seed: int = 0
    parts: int = 160  # each part is imaged under 4 illuminations -> 4 images
    resolution: int = 256
    defect_fraction: float = 0.18  # fraction of parts with a defect (paper: ~18 % of images)
    min_defect_px: int = 4  # smallest defect extent, in pixels at full resolution


@dataclass
class Defect:
    label: str
    polygon: list[tuple[float, float]]


@dataclass
class Part:
    index: int
    defects: list[Defect]
    images: dict[str, np.ndarray]  # illumination -> uint8 (H, W, 3)


def _rng(seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, index]))


def _polygon_mask(size: int, polygon: list[tuple[float, float]]) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in polygon], fill=255, outline=255)
    return np.asarray(img, dtype=np.float32) / 255.0


def _blob(rng: np.random.Generator, cx: float, cy: float, radius: float, n: int = 14, rough: float = 0.25):
    """A star-shaped, slightly irregular polygon (never self-intersecting: angles increase)."""
    angles = np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(-0.15, 0.15, n)
    radii = radius * (1 + rng.uniform(-rough, rough, n))
    return [(float(cx + r * math.cos(a)), float(cy + r * math.sin(a))) for a, r in zip(angles, radii, strict=True)]


class _Geometry:
    """An insert corner: two straight edges meeting at a rounded corner, object on one side."""

    def __init__(self, rng: np.random.Generator, size: int):
        self.size = size
        self.corner = np.array([rng.uniform(0.55, 0.75), rng.uniform(0.55, 0.75)]) * size
        theta = rng.uniform(-0.35, 0.35)
        opening = rng.uniform(math.radians(80), math.radians(100))
        # outward normals of the two edges
        self.n1 = np.array([math.cos(theta), math.sin(theta)])
        self.n2 = np.array([math.cos(theta + opening), math.sin(theta + opening)])
        self.n2 = self.n2 if self.n2 @ np.array([0.0, 1.0]) > -0.5 else -self.n2
        self.radius = rng.uniform(0.05, 0.12) * size
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
        self.xx, self.yy = xx, yy

    def sdf(self) -> np.ndarray:
        """Signed distance to the rounded corner (negative inside the part)."""
        px, py = self.xx - self.corner[0], self.yy - self.corner[1]
        d1 = px * self.n1[0] + py * self.n1[1]
        d2 = px * self.n2[0] + py * self.n2[1]
        r = self.radius
        q1, q2 = d1 + r, d2 + r
        outside = np.sqrt(np.maximum(q1, 0) ** 2 + np.maximum(q2, 0) ** 2)
        return outside + np.minimum(np.maximum(q1, q2), 0) - r

    def edge_point(self, rng: np.random.Generator) -> np.ndarray:
        """A point on one of the straight edges, away from the corner and the image border."""
        normals = [(self.n1, self.n2), (self.n2, self.n1)]
        for _ in range(200):
            n, other = normals[int(rng.integers(2))]
            t = np.array([-n[1], n[0]])
            t = t if t @ other < 0 else -t  # walk away from the corner, along the part
            p = self.corner + rng.uniform(self.radius + 0.05 * self.size, 0.7 * self.size) * t
            if (0.1 * self.size < p).all() and (p < 0.9 * self.size).all():
                return p
        return self.corner - (self.n1 + self.n2) / np.linalg.norm(self.n1 + self.n2) * self.radius * 0.3


def _inside_points(rng, sdf: np.ndarray, margin: float, size: int) -> tuple[float, float]:
    for _ in range(1000):
        x, y = rng.uniform(0.08, 0.92, 2) * size
        if sdf[int(y), int(x)] < -margin:
            return float(x), float(y)
    raise RuntimeError("demo geometry left no room for a defect")  # unreachable for sane sizes


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Ground/brushed carbide: fine anisotropic streaks plus slow shading."""
    streaks = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=(0.6, 7.0))
    angle = rng.uniform(-30, 30)
    streaks = ndimage.rotate(streaks, angle, reshape=False, mode="reflect")
    grain = ndimage.gaussian_filter(rng.normal(size=(size, size)), sigma=0.8)
    slow = ndimage.gaussian_filter(rng.normal(size=(size // 8, size // 8)), sigma=2)
    slow = np.kron(slow, np.ones((8, 8)))[:size, :size]
    t = (
        2.5 * streaks / (streaks.std() + 1e-6) * 0.12
        + grain / (grain.std() + 1e-6) * 0.06
        + slow / (slow.std() + 1e-6) * 0.08
    )
    return t.astype(np.float32)


def make_part(
    seed: int, index: int, size: int, defect_label: str | None, min_defect_px: int = DemoSettings.min_defect_px
) -> Part:
    rng = _rng(seed, index)
    geo = _Geometry(rng, size)
    sdf = geo.sdf()
    tex = _texture(rng, size)
    defects: list[Defect] = []
    height = np.zeros((size, size), np.float32)  # surface relief (bumps)
    dust = np.zeros((size, size), np.float32)
    chip = np.zeros((size, size), np.float32)
    scale = size / 256.0
    drng = np.random.default_rng(np.random.SeedSequence([seed, index, 1]))  # defects: their own stream, so a
    # part renders identically with or without its defect outside the defect region

    if defect_label == "bump":
        for _ in range(drng.integers(1, 3)):
            lo = max(min_defect_px / 2, 5 * scale)
            r = drng.uniform(lo, max(lo + 1, 12 * scale))
            cx, cy = _inside_points(drng, sdf, r + 4, size)
            poly = _blob(drng, cx, cy, r, n=16, rough=0.15)
            m = _polygon_mask(size, poly)
            height += ndimage.gaussian_filter(m, sigma=max(r / 2.5, 1.0)) * drng.uniform(3.0, 6.0)
            defects.append(Defect("bump", poly))
    elif defect_label == "chipping":
        p = geo.edge_point(drng)
        lo = max(min_defect_px / 2, 6 * scale)
        r = drng.uniform(lo, max(lo + 1, 16 * scale))
        poly = _blob(drng, p[0], p[1], r, n=12, rough=0.35)
        poly = [(min(max(x, 0.0), size - 1.0), min(max(y, 0.0), size - 1.0)) for x, y in poly]
        chip = _polygon_mask(size, poly)
        defects.append(Defect("chipping", poly))
    elif defect_label == "dust":
        for _ in range(drng.integers(1, 4)):
            r = drng.uniform(min_defect_px / 2, max(min_defect_px / 2 + 0.5, 5 * scale))
            cx, cy = _inside_points(drng, sdf, r + 2, size)
            n = 6 if r < 3 else 9
            poly = _blob(drng, cx, cy, r, n=n, rough=0.3)
            dust = np.maximum(dust, _polygon_mask(size, poly))
            defects.append(Defect("dust", poly))

    # Object occupancy with an anti-aliased edge; a chip removes material.
    obj = np.clip(0.5 - sdf, 0, 1) * (1 - chip)
    edge = np.exp(-((sdf / 1.5) ** 2)) * (1 - chip)
    chip_rim = np.clip(ndimage.gaussian_filter(chip, 1.2) - chip, 0, 1) * 2.5 * (sdf < 2)
    gy, gx = np.gradient(height)
    slope = np.sqrt(gx**2 + gy**2)
    shade = -(gx * 0.7 + gy * 0.7)  # light from the upper left
    dust_soft = ndimage.gaussian_filter(dust, 0.6)
    roughness = tex * obj

    images: dict[str, np.ndarray] = {}
    for light in ILLUMINATIONS:
        if light == "bright":
            v = 0.07 + obj * (0.55 + 0.6 * roughness + 0.9 * shade) - 0.45 * dust_soft - 0.35 * chip_rim
        elif light == "dark":
            v = 0.04 + obj * (0.09 + 0.35 * roughness.clip(0)) + 0.55 * edge + 2.5 * slope + 0.75 * dust_soft
            v += 0.6 * chip_rim
        elif light == "coaxial":
            v = 0.10 + obj * (0.78 + 0.4 * roughness - 3.0 * slope) - 0.55 * dust_soft - 0.4 * edge - 0.5 * chip_rim
        else:  # backlight: the part is a silhouette, faint reflected light shows the surface
            v = 0.93 * (1 - obj) + obj * (0.12 + 0.25 * roughness + 0.6 * shade) - 0.08 * dust_soft
        v = v + rng.normal(0, 0.012, v.shape)  # sensor noise
        rgb = np.stack([v * c for c in _TINT[light]], axis=-1)
        images[light] = (np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8)
    # Parts sit in the fixture in any of four orientations; rotate images and polygons together.
    k = int(rng.integers(4))
    for _ in range(k):
        images = {name: np.ascontiguousarray(np.rot90(img)) for name, img in images.items()}
        defects = [Defect(d.label, [(y, size - x) for x, y in d.polygon]) for d in defects]
    return Part(index, defects, images)


def plan_labels(seed: int, parts: int, defect_fraction: float) -> list[str | None]:
    """Which parts carry which defect: about ``defect_fraction`` of parts, classes balanced round-robin."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 10**6]))
    n_defect = int(round(parts * defect_fraction))
    labels: list[str | None] = [CLASSES[i % len(CLASSES)] for i in range(n_defect)] + [None] * (parts - n_defect)
    order = rng.permutation(parts)
    return [labels[i] for i in order]


def labelme_json(image_name: str, size: int, defects: list[Defect]) -> dict:
    return {
        "version": "5.4.1",
        "flags": {},
        "shapes": [
            {
                "label": d.label,
                "points": [[round(x, 2), round(y, 2)] for x, y in d.polygon],
                "group_id": None,
                "description": "",
                "shape_type": "polygon",
                "flags": {},
            }
            for d in defects
        ],
        "imagePath": image_name,
        "imageData": None,
        "imageHeight": size,
        "imageWidth": size,
    }


def generate_demo(out_dir: str | Path, s: DemoSettings, progress: bool = False) -> dict:
    """Write ``part####_<illumination>.png`` + LabelMe ``.json`` into ``out_dir``; return a summary.

    Every image gets a JSON (normal images have no shapes), as an annotation tool exports them.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seed, parts, resolution = s.seed, s.parts, s.resolution
    labels = plan_labels(seed, parts, s.defect_fraction)
    counts = {"normal": 0, **{c: 0 for c in CLASSES}}
    it = range(parts)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="demo parts", unit="part")
    for i in it:
        part = make_part(seed, i, resolution, labels[i], s.min_defect_px)
        for light, img in part.images.items():
            stem = f"part{i:04d}_{light}"
            Image.fromarray(img, "RGB").save(out / f"{stem}.png", optimize=False)
            (out / f"{stem}.json").write_text(
                json.dumps(labelme_json(f"{stem}.png", resolution, part.defects), indent=1)
            )
            counts[labels[i] or "normal"] += 1
    return {"parts": parts, "images": parts * len(ILLUMINATIONS), "counts": counts, "resolution": resolution}
