"""Sanity of the metrics library on small structured image sets (CPU, 32-64 px)."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from syndgan.errors import ConfigError
from syndgan.metrics import (
    REGISTRY,
    MetricInputError,
    MetricUnavailableError,
    available_metrics,
    create_perceptual,
    distance_matrix,
    extract_features,
    fid_from_features,
    get_metric,
    intra_cluster_distance,
    iter_uint8_batches,
    kid_from_features,
    paired_distances,
    resolve_metric_name,
    resolve_perceptual,
    to_uint8,
)
from syndgan.metrics import perceptual as perceptual_mod

HAS_TORCH_FIDELITY = importlib.util.find_spec("torch_fidelity") is not None


def tiles(n: int, seed: int, size: int = 64, shifted: bool = False) -> torch.Tensor:
    """Grayscale tile-like images (N, 1, size, size) uint8: oriented stripes plus dark blob 'defects'.

    ``shifted``: the same distribution made brighter and noisy (a clearly different image distribution).
    """
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    out = []
    for _ in range(n):
        theta, freq = g.uniform(0, np.pi), g.uniform(2, 6)
        img = g.uniform(0.35, 0.6) + 0.12 * np.sin(
            2 * np.pi * freq * (np.cos(theta) * xx + np.sin(theta) * yy) + g.uniform(0, 2 * np.pi)
        )
        for _ in range(g.integers(1, 4)):
            cy, cx, r = g.uniform(0.1, 0.9), g.uniform(0.1, 0.9), g.uniform(0.03, 0.12)
            img -= 0.3 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        if shifted:
            img = img + 0.25 + g.normal(0, 0.08, img.shape)
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out))[:, None]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: on the shared 2-core machine spinning OpenMP workers cost more than they give."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def feats():
    """effnet features of two independent draws of one distribution (a, a2) and of a shifted one (b)."""
    return {
        "a": extract_features(tiles(32, 1), "effnet", device="cpu"),
        "a2": extract_features(tiles(32, 2), "effnet", device="cpu"),
        "b": extract_features(tiles(32, 3, shifted=True), "effnet", device="cpu"),
    }


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    """A torch hub cache without Inception or VGG weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return tmp_path / "torch" / "hub" / "checkpoints"


@pytest.fixture(scope="module")
def effnet_distance():
    return create_perceptual("effnet")


# ----------------------------------------------------------------------------- inputs


def test_image_containers_give_identical_batches():
    imgs = tiles(3, 0, size=32)
    gray = imgs[:, 0].numpy()
    forms = [
        imgs,
        imgs[:, 0],
        gray,
        [Image.fromarray(x) for x in gray],
        list(gray),
        [torch.from_numpy(x)[None] for x in gray],
    ]
    for form in forms:
        (batch,) = list(iter_uint8_batches(form, batch_size=8))
        assert batch.dtype == torch.uint8 and torch.equal(batch, imgs)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    assert torch.equal(next(iter_uint8_batches(rgb, 8)), imgs.expand(-1, 3, -1, -1))


def test_mixed_sizes_batch_by_shape_and_bad_inputs_fail_clearly():
    items = [np.zeros((32, 32), np.uint8)] * 2 + [np.zeros((40, 48), np.uint8)] + [np.zeros((32, 32), np.uint8)]
    shapes = [tuple(b.shape) for b in iter_uint8_batches(items, batch_size=8)]
    assert shapes == [(2, 1, 32, 32), (1, 1, 40, 48), (1, 1, 32, 32)]
    with pytest.raises(MetricInputError, match="to_uint8"):
        list(iter_uint8_batches(torch.rand(2, 3, 8, 8), 4))
    with pytest.raises(MetricInputError, match="C in"):
        list(iter_uint8_batches(torch.zeros(2, 4, 8, 8, dtype=torch.uint8), 4))
    x = torch.tensor([[-1.0, 0.0, 1.0, 2.0]])
    assert to_uint8(x).tolist() == [[0, 128, 255, 255]]


# ----------------------------------------------------------------------------- FID / KID


def test_fid_self_zero_same_distribution_small_shift_large(feats):
    fid_self = fid_from_features(feats["a"], feats["a"])
    fid_same = fid_from_features(feats["a"], feats["a2"])
    fid_shift = fid_from_features(feats["a"], feats["b"])
    assert abs(fid_self) < 1e-2
    assert fid_same > 1.0  # finite samples of one distribution still differ
    assert fid_shift > 2 * fid_same


def test_fid_needs_two_images_per_set(feats):
    assert np.isfinite(fid_from_features(feats["a"][:2], feats["b"][:2]))
    with pytest.raises(MetricInputError, match="at least 2 real and 2 generated"):
        fid_from_features(feats["a"][:1], feats["b"])
    with pytest.raises(MetricInputError, match="fid_effnet needs at least 2"):
        get_metric("fid_effnet").compute(tiles(1, 0, size=32), tiles(3, 1, size=32))


def test_kid_unbiased_deterministic_and_capped(feats):
    same, same_std, size = kid_from_features(feats["a"], feats["a2"], subset_size=16, seed=0)
    shift, _, _ = kid_from_features(feats["a"], feats["b"], subset_size=16, seed=0)
    assert size == 16 and same_std > 0
    assert shift > 0.05 and abs(same) < 0.05 * shift  # two draws of one distribution: KID near 0
    assert kid_from_features(feats["a"], feats["a2"], subset_size=16, seed=0) == (same, same_std, size)
    assert kid_from_features(feats["a"], feats["a2"], subset_size=16, seed=1)[0] != same
    # subset size capped at the smaller set; tiny sets still work; one image does not
    assert kid_from_features(feats["a"], feats["b"][:5], subsets=10)[2] == 5
    assert np.isfinite(kid_from_features(feats["a"][:2], feats["b"][:2], subsets=3)[0])
    with pytest.raises(MetricInputError, match="at least 2"):
        kid_from_features(feats["a"][:1], feats["b"])


def test_kid_metric_reports_scaled_keys(feats):
    kid = get_metric("kid_effnet", subset_size=16, seed=0)
    out = kid.compute_from_features(feats["a"], feats["b"])
    raw, raw_std, _ = kid_from_features(feats["a"], feats["b"], subset_size=16, seed=0)
    assert out == {
        "kid_effnet_x1e3_mean": pytest.approx(raw * 1e3),
        "kid_effnet_x1e3_std": pytest.approx(raw_std * 1e3),
        "kid_effnet_subset_size": 16.0,
    }


# ----------------------------------------------------------------------------- registry and names


def test_generic_names_resolve_to_honest_names_without_weights(no_weights):
    assert resolve_metric_name("fid") == "fid_effnet"
    assert resolve_metric_name("kid") == "kid_effnet"
    assert resolve_metric_name("lpips") == "perceptual_effnet"
    assert resolve_metric_name("ic_lpips") == "ic_perceptual_effnet"
    assert get_metric("fid").name == "fid_effnet"
    assert available_metrics() == ["fid_effnet", "kid_effnet", "perceptual_effnet", "ic_perceptual_effnet"]
    for name in ("fid_inception", "kid_inception"):
        with pytest.raises(MetricUnavailableError, match="torch-fidelity|weights-inception-2015-12-05"):
            get_metric(name)
    for name in ("lpips_vgg", "ic_lpips_vgg"):
        with pytest.raises(MetricUnavailableError, match="vgg16-397923af.pth"):
            get_metric(name)
    with pytest.raises(ConfigError, match="unknown"):
        get_metric("fid_resnet")


@pytest.mark.skipif(HAS_TORCH_FIDELITY, reason="checks the message when torch-fidelity is missing")
def test_inception_weights_alone_are_not_enough(no_weights):
    no_weights.mkdir(parents=True)
    (no_weights / "weights-inception-2015-12-05-6726825d.pth").write_bytes(b"")
    assert resolve_metric_name("fid") == "fid_effnet"
    with pytest.raises(MetricUnavailableError, match="torch-fidelity"):
        get_metric("fid_inception")


def test_every_available_metric_runs_and_keys_carry_its_name():
    real, fake = tiles(4, 5, size=32), tiles(4, 6, size=32, shifted=True)
    for name in available_metrics():
        metric = get_metric(name, batch_size=3, device="cpu")
        assert metric.name == name and isinstance(metric.higher_is_better, bool)
        # IC: 4 generated images on 3 real ones, so some cluster has >= 2 members
        out = metric.compute(real[:3], fake) if name.startswith("ic_") else metric.compute(real, fake)
        assert out and all(k.startswith(name) and np.isfinite(v) for k, v in out.items()), (name, out)
    assert set(REGISTRY) >= set(available_metrics())


# ----------------------------------------------------------------------------- perceptual


def test_effnet_perceptual_distance_zero_positive_and_differentiable(effnet_distance):
    d = effnet_distance
    assert d.name == "perceptual_effnet"
    x = tiles(3, 7, size=64).float() / 127.5 - 1
    y = tiles(3, 8, size=64).float() / 127.5 - 1
    assert torch.equal(d(x, x), torch.zeros(3))
    dxy = d(x, y)
    assert dxy.shape == (3,) and bool((dxy > 0.1).all())
    assert torch.allclose(d(y, x), dxy, atol=1e-5)
    assert torch.allclose(d(x.expand(-1, 3, -1, -1), y), dxy, atol=1e-6)  # gray == gray repeated to RGB
    xg = x.clone().requires_grad_(True)
    d(xg, y).sum().backward()
    assert xg.grad is not None and torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in d.parameters())
    with pytest.raises(MetricInputError, match="differ in shape"):
        d(x, y[:, :, :32])


def test_normalization_has_finite_gradients_at_zero_feature_vectors():
    f = torch.zeros(1, 4, 2, 2)
    f[0, :, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    f.requires_grad_(True)
    out = perceptual_mod._unit_normalize(f)
    out.sum().backward()
    assert torch.isfinite(f.grad).all()
    assert torch.allclose(out[0, :, 0, 0].norm(), torch.tensor(1.0)) and out[0, :, 1, 1].abs().sum() == 0


def test_distance_matrix_agrees_with_paired_distances(effnet_distance):
    a, b = tiles(5, 9, size=32), tiles(5, 10, size=32)
    paired = paired_distances(a, b, effnet_distance, batch_size=2, device="cpu")
    full = distance_matrix(a, b, effnet_distance, batch_size=2, device="cpu")
    uncached = distance_matrix(a, b, effnet_distance, batch_size=2, device="cpu", cache_bytes=0)
    assert full.shape == (5, 5)
    assert torch.allclose(full.diagonal(), paired, atol=1e-5)
    assert torch.allclose(full, uncached)
    assert distance_matrix(a, a, effnet_distance, device="cpu").diagonal().abs().max() < 1e-5


def _random_vgg16_file(path):
    """A torchvision-layout VGG16 ``features`` state dict with random weights (never the real file)."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["D"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return features.state_dict()


def test_lpips_vgg_loads_backbone_file_and_matches_lpips_package(no_weights):
    import lpips

    path = no_weights / "vgg16-397923af.pth"
    with pytest.raises(MetricUnavailableError, match="vgg16-397923af.pth"):
        create_perceptual("vgg")
    src = _random_vgg16_file(path)
    assert resolve_perceptual("auto") == "vgg" and resolve_metric_name("lpips") == "lpips_vgg"
    assert resolve_metric_name("ic_lpips") == "ic_lpips_vgg"
    d = create_perceptual("auto")
    assert d.name == "lpips_vgg"
    ours = d.lpips.net.state_dict()
    assert torch.equal(ours["slice1.0.weight"], src["0.weight"]) and torch.equal(ours["slice5.28.bias"], src["28.bias"])

    with warnings.catch_warnings():  # torchvision's note on lpips' legacy `pretrained=` argument
        warnings.simplefilter("ignore", UserWarning)
        ref = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False)
    ref.net.load_state_dict(ours)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.allclose(d(x, y), ref(x, y).flatten(), rtol=1e-5, atol=1e-6)
    assert torch.equal(d(x, x), torch.zeros(2))
    xg = x.clone().requires_grad_(True)
    d(xg, y).sum().backward()
    assert torch.isfinite(xg.grad).all() and xg.grad.abs().sum() > 0

    perceptual_mod.cached_perceptual.cache_clear()
    try:
        out = get_metric("lpips", device="cpu").compute(tiles(2, 1, size=32), tiles(2, 2, size=32))
        assert set(out) == {"lpips_vgg", "lpips_vgg_std"} and out["lpips_vgg"] > 0
    finally:
        perceptual_mod.cached_perceptual.cache_clear()  # the random-weight model must not outlive this test


# ----------------------------------------------------------------------------- diversity


def test_ic_zero_for_copies_positive_for_diverse(effnet_distance):
    real = tiles(3, 11, size=32)
    copies = real[1:2].repeat(6, 1, 1, 1)
    out = intra_cluster_distance(real, copies, effnet_distance, device="cpu")
    assert out["assignment"] == [1] * 6 and out["clusters"] == 1 and out["value"] < 1e-5

    diverse = tiles(12, 12, size=32)
    out = intra_cluster_distance(real[:2], diverse, effnet_distance, batch_size=5, device="cpu")
    assert out["value"] > 0.1 and out["clusters"] >= 1
    assert out["all_clusters"] <= out["value"] + 1e-12


def test_ic_clusters_each_generated_image_on_its_source(effnet_distance):
    real = tiles(4, 13, size=32)
    fake = torch.cat([real, real])  # every real image memorized twice: zero diversity in every cluster
    out = intra_cluster_distance(real, fake, effnet_distance, device="cpu")
    assert out["assignment"] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert out["clusters"] == 4 and out["value"] < 1e-5


def test_ic_small_sets_fail_clearly(effnet_distance):
    real = tiles(3, 14, size=32)
    with pytest.raises(MetricInputError, match=">= 2 generated"):
        intra_cluster_distance(real, real[:1], effnet_distance, device="cpu")
    with pytest.raises(MetricInputError, match="generate more images"):
        intra_cluster_distance(real, real[:1].repeat(3, 1, 1, 1), effnet_distance, device="cpu", max_per_cluster=1)
