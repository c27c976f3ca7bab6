"""Placement works on the defect's window (issue 32.1), with the results of the whole-image code it replaced.

The old operations are kept here as the reference: ``make_patch`` (whole warped crop: affine warp, elastic
displacement, morphology and ring dilations over all of it), ``morph`` on the whole array, the location prior's
whole-image distance transform. Each windowed operation must give the same arrays bit for bit, on random defects
(blobs, far-apart parts, thin lines, 1-px grains, at the image border), foregrounds and transforms. The digests pin
whole augment runs with the chosen placement variant to the outputs of the code before the change.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage
from test_augment import make_tiny_processed
from test_augment_diversity import _digest

import syndgan.augment.warping as warping
from syndgan.augment import PlacementSettings, create_method, generate_augmented
from syndgan.augment.deform import displace, displacement, morph
from syndgan.augment.location import PositionSampler, centroid_distance, depth_at, edge_distance
from syndgan.augment.placement import (
    DefectSource,
    Surface,
    Transform,
    make_patch,
    place_defect,
    ring_radius,
    target_edges,
    warp,
)
from syndgan.augment.settings import ElasticSettings
from syndgan.data.processed import ProcessedDataset, train_pool

CHOSEN = {  # data/configs/scarcity-magnetic-tile-chosen.yaml's augment.placement
    "elastic": ElasticSettings(alpha=4.0, sigma=4.0),
    "morph": 2,
    "recombine": 0.3,
    "location_prior": True,
    "max_defects": 2,
}
# Outputs of the whole-image code (255c28a) for the runs in ``test_runs_reproduce_the_whole_image_code``.
BEFORE_DIGESTS = {
    "chosen": "9c87461f8c6cc2878a0cb026b55c84069bd623569f00cde011c4ad9abbc4dcd5",
    "base": "f7cb45dab29d7292137457545cc5092a59cded55677e3766a64db7c870e289d6",
    "elastic": "0fb9a98843258df62edec489554a5ff9831d4071db260314184217059cab4622",
    "erode": "20b8d0ee39081cfc1c615c25fddc108f5f0ec7502af4215eb51b89a37b419cc5",
}
RUNS = {
    "chosen": PlacementSettings(**CHOSEN),
    "base": PlacementSettings(),
    "elastic": PlacementSettings(elastic=ElasticSettings(alpha=3.0, sigma=3.0)),
    "erode": PlacementSettings(morph=3, max_defects=3),  # erosions that remove whole parts: innermost pixel kept
}


# --------------------------------------------------------------------------- the whole-image reference


def _bbox(mask):
    rows, cols = np.nonzero(mask)
    return int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1


def reference_morph(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius > 0:
        return ndimage.binary_dilation(mask, iterations=radius)
    if radius == 0 or not mask.any():
        return mask.copy()
    out = ndimage.binary_erosion(mask, iterations=-radius)
    parts, n = ndimage.label(mask, structure=np.ones((3, 3)))
    gone = np.setdiff1d(np.arange(1, n + 1), np.unique(parts[out]))
    if len(gone):
        depth = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        for pos in ndimage.maximum_position(depth, parts, gone):
            out[pos] = True
    return out


def reference_patch(source: DefectSource, transform: Transform) -> dict[str, np.ndarray]:
    """make_patch before issue 32: every array over the whole warped crop."""
    radius = ring_radius(source.mask)
    pad = radius + 2 + (int(math.ceil(transform.elastic[0])) if transform.elastic else 0) + max(transform.morph, 0)
    r0, r1, c0, c1 = _bbox(source.mask)
    H, W = source.mask.shape
    sl = (slice(max(0, r0 - pad), min(H, r1 + pad)), slice(max(0, c0 - pad), min(W, c1 + pad)))
    soft = warp(source.mask[sl].astype(np.float32), transform, order=1)
    known = warp(np.ones(source.mask[sl].shape, np.float32), transform, order=0)
    fg = warp(source.fg[sl].astype(np.float32), transform, order=0)
    pixels = warp(source.image[sl], transform, order=1)
    if transform.elastic:
        shift = displacement(soft.shape, *transform.elastic)
        soft, known, fg = displace(soft, shift, 1), displace(known, shift, 0), displace(fg, shift, 0)
        pixels = displace(pixels, shift, 1)
    mask = soft >= 0.5
    if not mask.any():
        mask.flat[int(np.argmax(soft))] = True
    known = known > 0.5
    src_fg = (fg > 0.5) & known
    if transform.morph:
        mask = reference_morph(mask, transform.morph) & (known | mask)
    radius = ring_radius(mask)
    ring = ndimage.binary_dilation(mask, iterations=radius) & ~mask & known
    keep = ndimage.binary_dilation(mask, iterations=radius + 1) & known | mask
    t0, t1, u0, u1 = _bbox(keep)
    crop = (slice(t0, t1), slice(u0, u1))
    out = {"mask": mask[crop], "pixels": pixels[crop], "known": known[crop], "src_fg": src_fg[crop]}
    out["ring"] = ring[crop]
    edge = out["ring"] & out["src_fg"] & ~ndimage.binary_erosion(out["src_fg"], border_value=1)
    out["edge_pixels"] = np.argwhere(edge)
    return out


# --------------------------------------------------------------------------- random cases


def _random_mask(rng: np.random.Generator, size: int) -> np.ndarray:
    """One of: a blob, two far-apart parts, a thin line, a 1-px grain, a blob cut by the image border."""
    yy, xx = np.mgrid[0:size, 0:size]
    kind = int(rng.integers(5))
    mask = np.zeros((size, size), bool)
    centres = rng.integers(0, size, (2 if kind == 1 else 1, 2))
    if kind == 4:  # at the border
        centres[0, int(rng.integers(2))] = int(rng.choice([0, size - 1]))
    for cy, cx in centres:
        if kind == 2:
            t = np.linspace(0, 1, 4 * size)
            angle = rng.uniform(0, np.pi)
            r = np.clip(np.rint(cy + t * size * 0.4 * np.sin(angle)), 0, size - 1).astype(int)
            c = np.clip(np.rint(cx + t * size * 0.4 * np.cos(angle)), 0, size - 1).astype(int)
            mask[r, c] = True
        elif kind == 3:
            mask[cy, cx] = True
        else:
            ry, rx = rng.uniform(1.0, size / 8, 2)
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    if not mask.any():
        mask[centres[0][0], centres[0][1]] = True
    return mask


def _random_source(rng: np.random.Generator, size: int, channels: int) -> DefectSource:
    mask = _random_mask(rng, size)
    yy, xx = np.mgrid[0:size, 0:size]
    a, b = rng.uniform(-1, 1, 2)
    fg = np.ones((size, size), bool) if rng.random() < 0.3 else (a * (yy - size / 2) + b * (xx - size / 2) > 0)
    shape = (size, size) if channels == 1 else (size, size, channels)
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    return DefectSource("src", 1, image, mask, fg)


def _random_transform(rng: np.random.Generator, elastic: bool | None = None, morph: int | None = None) -> Transform:
    elastic = rng.random() < 0.7 if elastic is None else elastic
    return Transform(
        flip_h=bool(rng.random() < 0.5),
        flip_v=bool(rng.random() < 0.5),
        angle=float(90 * rng.integers(4) + rng.uniform(-20, 20)),
        scale=float(rng.uniform(0.5, 1.6)),
        elastic=(float(rng.uniform(0.5, 6.0)), float(rng.uniform(1.0, 6.0)), int(rng.integers(2**31)))
        if elastic
        else None,
        morph=int(rng.integers(-3, 4)) if morph is None else morph,
    )


def _assert_same_patch(source: DefectSource, t: Transform) -> None:
    ref = reference_patch(source, t)
    patch = make_patch(source, t)
    for key, want in ref.items():
        got = getattr(patch, key)
        assert got.shape == want.shape and got.dtype == want.dtype, (key, t)
        assert np.array_equal(got, want), (key, t)


@pytest.mark.parametrize("seed", range(12))
def test_windowed_patch_equals_the_whole_crop_computation(seed):
    rng = np.random.default_rng(seed)
    for _ in range(8):
        source = _random_source(rng, int(rng.integers(24, 160)), int(rng.choice([1, 3])))
        _assert_same_patch(source, _random_transform(rng))


def test_windowed_patch_corner_cases():
    rng = np.random.default_rng(5)
    grain = np.zeros((40, 40), bool)
    grain[0, 39] = True  # 1 px in a corner: shrinks below half a pixel, touches two borders
    source = DefectSource("g", 1, rng.integers(0, 256, (40, 40), dtype=np.uint8), grain, np.ones((40, 40), bool))
    for t in [Transform(scale=0.5), Transform(scale=0.5, morph=-3), Transform(angle=45.0, elastic=(4.0, 4.0, 3))]:
        _assert_same_patch(source, t)
    full = np.ones((30, 30), bool)  # the whole image is defect
    source = DefectSource("f", 1, rng.integers(0, 256, (30, 30, 3), dtype=np.uint8), full, full.copy())
    for t in [Transform(), Transform(angle=30.0, scale=1.3, morph=2), Transform(elastic=(3.0, 2.0, 1), morph=-2)]:
        _assert_same_patch(source, t)


def test_one_interpolation_per_array_when_the_crop_is_huge(monkeypatch):
    """Crops of 2**24 px or more number their pixels beyond float32's integers: known and foreground then get
    one interpolation each (forced here by lowering the limit)."""
    monkeypatch.setattr(warping, "INDEX_LIMIT", 0)
    rng = np.random.default_rng(11)
    for _ in range(6):
        _assert_same_patch(_random_source(rng, 64, 1), _random_transform(rng))


def test_a_scipy_adding_coordinates_up_otherwise_gets_whole_warps(monkeypatch):
    """Sampling the affine warp at chosen pixels must add coordinates up as scipy's own loop does; if this scipy
    does it neither known way, the whole crop is warped (slower, the same)."""
    assert warping._scipy_sum_order() is not None  # this project's scipy is one of the known ways
    monkeypatch.setattr(warping, "_scipy_sum_order", lambda: None)
    rng = np.random.default_rng(12)
    for _ in range(6):
        _assert_same_patch(_random_source(rng, 64, int(rng.choice([1, 3]))), _random_transform(rng))


@pytest.mark.parametrize("radius", [-3, -2, -1, 1, 2, 3])
def test_windowed_morph_equals_the_whole_array(radius):
    rng = np.random.default_rng(radius + 10)
    for _ in range(20):
        size = int(rng.integers(8, 64))
        mask = _random_mask(rng, size)
        if rng.random() < 0.5:  # specks and 2 x 2 squares: parts an erosion removes, deepest pixels tied
            for cy, cx in rng.integers(0, size - 1, (4, 2)):
                mask[cy : cy + int(rng.integers(1, 3)), cx : cx + int(rng.integers(1, 3))] = True
        assert np.array_equal(morph(mask, radius), reference_morph(mask, radius))
    assert not morph(np.zeros((5, 5), bool), -2).any()


def test_affine_samples_equal_scipys_whole_warp():
    rng = np.random.default_rng(3)
    for _ in range(20):
        a = rng.random((int(rng.integers(5, 70)), int(rng.integers(5, 70)))).astype(np.float32)
        t = _random_transform(rng, elastic=False, morph=0)
        w = warping._Warped(a.shape, t)
        whole = {order: warp(a, t, order) for order in (0, 1)}
        rows, cols = (g.ravel() for g in np.mgrid[0 : w.shape[0], 0 : w.shape[1]])
        for order in (0, 1):
            assert np.array_equal(w.affine_at(a, rows, cols, order).reshape(w.shape), whole[order])


def test_edge_distance_at_one_pixel_equals_the_distance_transform():
    rng = np.random.default_rng(4)
    for _ in range(20):
        size = int(rng.integers(5, 80))
        fg = ndimage.binary_opening(rng.random((size, size)) < 0.8) if rng.random() < 0.7 else np.ones((size, size))
        fg = fg.astype(bool)
        depth = ndimage.distance_transform_edt(np.pad(fg, 1))[1:-1, 1:-1]
        for y, x in rng.integers(0, size, (10, 2)):
            assert depth_at(fg, int(y), int(x)) == depth[y, x]
        mask = _random_mask(rng, size)
        cy, cx = (np.argwhere(mask).mean(axis=0) + 0.5).astype(int)
        assert centroid_distance(mask, fg) == float(edge_distance(fg)[cy, cx])


def test_surface_gives_the_placements_of_the_plain_foreground():
    """What a target's Surface computes once (object pixels, edges, pixels by edge distance) changes no draw."""
    rng = np.random.default_rng(8)
    fg = np.zeros((96, 96), bool)
    fg[10:90, 6:80] = True
    s = PlacementSettings(**{**CHOSEN, "min_context_agreement": 0.6})
    surface = Surface(fg)
    prior = np.array([0.05, 0.3])
    for i in range(6):
        src = _random_source(rng, 96, 1)
        plain = place_defect(src, fg, np.random.default_rng(i), s, prior=prior)
        cached = place_defect(src, surface, np.random.default_rng(i), s, prior=prior)
        assert (plain is None) == (cached is None)
        if plain is not None:
            assert plain.record() == cached.record() and np.array_equal(plain.pixels, cached.pixels)
    pool, d = surface.by_edge_distance()
    sampler = PositionSampler(surface.pixels(True), fg, prior)
    assert np.array_equal(sampler.pool, pool) and np.array_equal(sampler.d, d)
    assert np.array_equal(surface.edges, target_edges(fg))


@pytest.fixture(scope="module")
def tiny48(tmp_path_factory) -> ProcessedDataset:
    return ProcessedDataset.load(make_tiny_processed(tmp_path_factory.mktemp("tiny48"), resolution=48))


@pytest.mark.parametrize("name", list(RUNS))
def test_runs_reproduce_the_whole_image_code(tiny48, tmp_path, name):
    targets = {"bump": 4, "chipping": 3, "dust": 4}
    m = generate_augmented(tiny48, create_method("copy_paste"), targets, tmp_path, train_pool(tiny48), RUNS[name], 1)
    assert _digest(tmp_path, m) == BEFORE_DIGESTS[name]


def test_bench_augment_prints_a_row_per_method(capsys):
    from pathlib import Path

    from pipeline.experiments import bench_augment

    params = Path(__file__).resolve().parent.parent / "params.yaml"
    argv = ["--params", str(params), "--sizes", "64", "--images", "3", "--methods", "none", "cutmix", "copy_paste"]
    assert bench_augment.main([*argv, "copy_paste+chosen"]) == 0
    table = capsys.readouterr().out.split("images/s")[-1]
    for name in ("none", "cutmix", "copy_paste", "copy_paste+chosen"):
        assert f" {name} " in table
