"""Mask diversity switches of augment.placement (issue 12, lever 2): elastic, morph, recombine and the location
prior keep masks valid, are repeatable per seed, and with all of them off placement is main's bit for bit."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import ndimage
from test_augment import make_tiny_processed

from pipeline.config import parse_params
from syndgan.augment import PlacementSettings, check_provenance, create_method, generate_augmented
from syndgan.augment.deform import morph, recombine
from syndgan.augment.location import centroid_distance, edge_distance
from syndgan.augment.placement import DefectSource, Transform, compose_labelmap, make_patch, place_defect
from syndgan.augment.settings import ElasticSettings
from syndgan.data.processed import ProcessedDataset, train_pool
from syndgan.errors import ConfigError

# Outputs of main at 25603cf (before these switches existed) for the run in ``_digest_run``: decoded image and
# label map pixels plus the manifest. They move only if placement or pasting changes (or numpy/scipy arithmetic).
MAIN_DIGESTS = {
    1: "688243a6a9c6fcae9bd7864234c50afced46fb1b00922b089bc44040c4c19824",
    3: "4b58c2befc2e0f96e1ff13fb3c9cfe05a9edcb1f061fc25e3d3a127a807fe7f2",
}
OLD_PLACEMENT_KEYS = {
    "flip", "rotate90", "max_rotation", "scale", "min_context_agreement", "tries", "max_defects",
    "appearance_top_k", "fg_window", "fg_separability",
}  # fmt: skip
SWITCHES = {
    "elastic": {"elastic": ElasticSettings(alpha=3.0, sigma=3.0)},
    "morph": {"morph": 2},
    "recombine": {"recombine": 1.0},
    "location_prior": {"location_prior": True},
}


@pytest.fixture(scope="module")
def tiny32(tmp_path_factory) -> ProcessedDataset:
    root = tmp_path_factory.mktemp("tiny32")
    return ProcessedDataset.load(make_tiny_processed(root, classes=("bump", "dust"), resolution=32))


@pytest.fixture(scope="module")
def tiny48(tmp_path_factory) -> ProcessedDataset:
    return ProcessedDataset.load(make_tiny_processed(tmp_path_factory.mktemp("tiny48"), resolution=48))


def _digest(folder, manifest) -> str:
    h = hashlib.sha256()
    for rel in list(manifest["image"]) + list(manifest["labelmap"]):
        a = np.asarray(Image.open(folder / rel))
        h.update(a.tobytes())
        h.update(str(a.shape).encode())
    h.update(manifest.to_json().encode())
    return h.hexdigest()


@pytest.mark.parametrize("max_defects", [1, 3])
def test_switches_off_reproduce_main_bit_for_bit(tiny32, tmp_path, max_defects):
    s = PlacementSettings(max_defects=max_defects, min_context_agreement=0.5)
    targets = {"bump": 4, "dust": 5}
    m = generate_augmented(tiny32, create_method("copy_paste"), targets, tmp_path, train_pool(tiny32), s, seed=3)
    assert _digest(tmp_path, m) == MAIN_DIGESTS[max_defects]


def test_augment_json_records_only_switches_that_are_on():
    assert set(PlacementSettings().record()) == OLD_PLACEMENT_KEYS  # augment.json as before: DVC sees no change
    on = PlacementSettings(morph=1, elastic=ElasticSettings(alpha=2.0), recombine=0.5, location_prior=True)
    assert set(on.record()) == OLD_PLACEMENT_KEYS | {"elastic", "morph", "recombine", "location_prior"}
    assert on.record()["elastic"] == {"alpha": 2.0, "sigma": 4.0}


@pytest.mark.parametrize("name", list(SWITCHES))
def test_each_switch_keeps_masks_valid_and_repeats_per_seed(tiny48, tmp_path, name):
    pool = train_pool(tiny48)
    targets = {"bump": 4, "chipping": 3, "dust": 4}
    s = PlacementSettings(**SWITCHES[name])
    runs = [generate_augmented(tiny48, create_method("copy_paste"), targets, tmp_path / d, pool, s, 1) for d in "ab"]
    m = runs[0]
    assert m.equals(runs[1])
    for rel in [*m["image"], *m["labelmap"]]:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    check_provenance(m, pool, "manifest", tiny48.index)  # recombined sources are listed and of the class
    base = generate_augmented(tiny48, create_method("copy_paste"), targets, tmp_path / "off", pool, seed=1)
    changed = 0
    for row, off in zip(m.itertuples(), base.itertuples(), strict=True):
        lm = np.asarray(Image.open(tmp_path / "a" / row.labelmap))
        assert set(np.unique(lm)) == {0, tiny48.class_ids[row.label]}, row.id  # non-empty, only its class
        changed += not np.array_equal(lm, np.asarray(Image.open(tmp_path / "off" / off.labelmap)))
    assert changed >= len(m) // 2  # the switch did something
    if name == "recombine":
        assert sum("|" in src for src in m["mask_source"]) >= len(m) // 2  # the partner may be the source itself
    if name in ("elastic", "morph"):
        assert any(k in t for t in m["transform"] for k in ('"elastic_seed"', '"morph"'))


def _noise(size=64, seed=0) -> np.ndarray:
    """All object (unimodal texture): positions are limited by the image border only."""
    return np.random.default_rng(seed).normal(128, 12, (size, size)).clip(0, 255).astype(np.uint8)


def _source(mask, img=None, sid="src") -> DefectSource:
    img = _noise(mask.shape[0]) if img is None else img
    return DefectSource(sid, 1, img, mask, np.ones(mask.shape, bool))


def test_elastic_moves_mask_and_pixels_together():
    mask = np.zeros((64, 64), bool)
    mask[24:36, 26:38] = True
    img = _noise()
    img[mask] = 250
    plain = make_patch(_source(mask, img), Transform())
    warped = make_patch(_source(mask, img), Transform(elastic=(3.0, 3.0, 7)))
    assert warped.mask.any() and not np.array_equal(warped.mask, plain.mask)
    bright = warped.pixels > 200  # the pasted defect pixels are where the deformed mask is
    assert (bright & warped.mask).sum() / (bright | warped.mask).sum() > 0.85
    again = make_patch(_source(mask, img), Transform(elastic=(3.0, 3.0, 7)))
    assert np.array_equal(again.mask, warped.mask) and np.array_equal(again.pixels, warped.pixels)


def test_morph_grows_and_shrinks_without_losing_a_part():
    mask = np.zeros((32, 32), bool)
    mask[4:13, 4:13] = True  # 9 x 9
    mask[20, 20] = True  # a 1-px dust grain
    mask[25:27, 5:7] = True  # 2 x 2
    eroded = morph(mask, -3)
    assert (eroded <= mask).all() and eroded[20, 20] and eroded[25:27, 5:7].any()
    assert eroded[4:13, 4:13].sum() == 9  # the square lost 3 px all round
    assert ndimage.label(eroded)[1] == ndimage.label(mask)[1] == 3
    grown = morph(mask, 2)
    assert (grown >= mask).all() and grown.sum() > mask.sum()


def test_recombine_unites_two_masks_that_touch():
    a_mask = np.zeros((48, 48), bool)
    a_mask[20:26, 20:26] = True
    b_img = _noise(48, seed=3)
    b_img[:] = 7
    b_mask = np.zeros((48, 48), bool)
    b_mask[5:9, 30:44] = True
    a, b = _source(a_mask, sid="a"), _source(b_mask, b_img, sid="b")
    for seed in range(10):
        r = recombine(a, b, np.random.default_rng(seed))
        assert r.id == "a|b" and r.class_id == 1
        assert (r.mask >= a.mask).all() and r.mask.sum() > a.mask.sum()
        assert ndimage.label(r.mask, structure=np.ones((3, 3)))[1] == 1  # one defect
        added = r.mask & ~a.mask
        assert (r.image[added] == 7).all()  # b's pixels came with its mask
        assert np.array_equal(r.image[~r.mask], a.image[~r.mask])


def _placed_distances(source, target, prior, seeds=30):
    s = PlacementSettings(tries=100)
    fg = np.ones(target.shape, bool)
    out = []
    for seed in range(seeds):
        p = place_defect(source, fg, np.random.default_rng(seed), s, prior=prior)
        assert p is not None
        out.append(centroid_distance(compose_labelmap(target.shape, [p]) > 0, fg))
    return np.array(out)


def test_location_prior_places_a_class_where_its_train_masks_are():
    fg = np.ones((64, 64), bool)
    edge = np.zeros((64, 64), bool)
    edge[4:8, 30:34] = True  # a train defect near the image border
    centre = np.zeros((64, 64), bool)
    centre[30:34, 30:34] = True
    d_edge, d_centre = centroid_distance(edge, fg), centroid_distance(centre, fg)
    assert d_edge < 0.12 and d_centre > 0.45 and edge_distance(fg).max() == pytest.approx(0.5)
    target = _noise(seed=9)
    near = _placed_distances(_source(edge), target, np.array([d_edge]))
    anywhere = _placed_distances(_source(edge), target, None)
    assert (np.abs(near - d_edge) <= 0.02 + 1.5 / 64).all()  # prior bandwidth + centroid rounding
    assert anywhere.mean() > near.mean() + 0.05
    middle = _placed_distances(_source(centre), target, np.array([d_centre]))
    assert (middle > 0.4).all()


@pytest.mark.parametrize(
    "placement, key",
    [
        ({"elastic": {"alpha": -1.0}}, "augment.placement.elastic.alpha"),
        ({"elastic": {"sigma": 0}}, "augment.placement.elastic.sigma"),
        ({"morph": -2}, "augment.placement.morph"),
        ({"recombine": 1.5}, "augment.placement.recombine"),
        ({"location_prior": "yes"}, "augment.placement.location_prior"),
        ({"max_rotation": 200.0}, "augment.placement.max_rotation"),
        ({"elastc": {}}, "augment.placement.elastc"),
    ],
)
def test_bad_switches_name_the_key(placement, key, tmp_path):
    with pytest.raises(ConfigError) as e:
        parse_params({"augment": {"placement": placement}})
    assert key in str(e.value) and "\n" not in str(e.value)


def test_switches_reach_the_stage(tiny48, tmp_path):
    from pipeline.augment import main

    raw = {
        "ingest": {"classes": {c: [i, i, i] for i, c in enumerate(tiny48.class_names, start=1)}},
        "rasterize": {"out": str(tiny48.root)},
        "augment": {
            "targets": {"mode": "count", "count": 2},
            "out": str(tmp_path / "augmented"),
            "placement": {"morph": 1, "recombine": 0.5},
        },
    }
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    assert main(["--method", "copy_paste", "--params", str(tmp_path / "params.yaml")]) == 0
    info = json.loads((tmp_path / "augmented" / "copy_paste" / "augment.json").read_text())
    assert info["placement"]["morph"] == 1 and info["placement"]["recombine"] == 0.5
    assert "elastic" not in info["placement"] and info["images"] == 6
