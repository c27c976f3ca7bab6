"""The ImageNet EfficientNet-Lite0 weights are real, load without any download, and map by order and shape."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from syndgan.models.features import (
    FeatureNetwork,
    PooledFeatures,
    create_efficientnet_lite0,
    map_packaged_state_dict,
    packaged_weights_path,
)

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def classifier():
    torch.set_num_threads(1)
    return create_efficientnet_lite0(pretrained=True).eval()


def top1(model, img: np.ndarray) -> int:
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255.0
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return int(model(x * 2 - 1).argmax(-1))


def test_chelsea_is_a_cat(classifier):
    assert 281 <= top1(classifier, skimage_data.chelsea()) <= 285


def test_coffee_is_espresso(classifier):
    assert top1(classifier, skimage_data.coffee()) == 967


def test_default_is_not_pretrained_and_differs():
    a = create_efficientnet_lite0()
    b = create_efficientnet_lite0(pretrained=True)
    wa, wb = a.state_dict()["conv_stem.weight"], b.state_dict()["conv_stem.weight"]
    assert not torch.equal(wa, wb)
    ref = torch.load(packaged_weights_path(), map_location="cpu", weights_only=True)["_conv_stem.weight"]
    assert torch.equal(wb, ref)


def test_shape_mismatch_fails_loudly():
    src = {"a": torch.zeros(3, 3), "b": torch.zeros(2)}
    with pytest.raises(ValueError, match="does not fit"):
        map_packaged_state_dict(src, {"x": torch.zeros(3, 3), "y": torch.zeros(3)})
    with pytest.raises(ValueError, match="tensors in file"):
        map_packaged_state_dict(src, {"x": torch.zeros(3, 3)})


def test_feature_network_is_frozen_with_four_stages():
    net = FeatureNetwork(pretrained=True)
    feats = net(torch.rand(2, 1, 64, 64) * 2 - 1)  # grayscale is replicated
    assert [f.shape[1] for f in feats] == net.channels == [24, 40, 112, 320]
    assert [64 // f.shape[-1] for f in feats] == net.reductions == [4, 8, 16, 32]
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.body.training  # BatchNorm statistics never move


def test_new_head_keeps_imagenet_backbone():
    m = create_efficientnet_lite0(pretrained=True, num_classes=4)
    assert m.get_classifier().out_features == 4
    pooled = PooledFeatures(pretrained=True)
    assert pooled(torch.zeros(2, 3, 32, 32, dtype=torch.uint8)).shape == (2, 1280)
