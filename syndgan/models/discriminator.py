"""Projected multi-scale discriminator (ProjectedGAN, Sauer et al. 2021; SyNDGAN Sec. III.B).

    image -> DiffAugment -> frozen EfficientNet-Lite0 (4 stages)
          -> CCM: fixed random 1x1 convs (cross-channel mixing)
          -> CSM: top-down fusion (deeper map upsampled x2, added, fixed random 1x1 conv)
          -> one small spectral-norm conv discriminator per scale -> logit maps, concatenated.

The feature network and the random projections are frozen (ProjectedGAN: "random projections are not
trained"); only the per-scale heads learn. ``trainable_state_dict`` holds everything that is not the
ImageNet feature network (heads, BatchNorm statistics, spectral-norm vectors and the fixed projections),
which is what a checkpoint needs.

Options kept for ablations: ``scales`` (e.g. ``(3,)`` for a single-scale discriminator), ``csm=False``
(channel mixing only), ``n_classes > 0`` for an auxiliary-classifier head that predicts the image class.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.parametrizations import spectral_norm

from syndgan.models.diffaug import DiffAugment
from syndgan.models.features import FeatureNetwork

FEATURE_PREFIX = "feature_network."


def sn_conv(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True) -> nn.Module:
    return spectral_norm(nn.Conv2d(cin, cout, k, stride, padding, bias=bias))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.main = nn.Sequential(sn_conv(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))

    def forward(self, x):
        return self.main(x)


class ScaleDiscriminator(nn.Module):
    """Strided SN convs from ``start_res`` down to ``end_res``, then a 1-channel logit map (and class logits)."""

    def __init__(
        self,
        cin: int,
        start_res: int,
        end_res: int,
        channel_base: int,
        channel_max: int,
        n_classes: int,
    ):
        super().__init__()

        def ch(res: int) -> int:
            return max(16, min(channel_max, channel_base // res))

        layers, res, c = [], start_res, cin
        while res > end_res:
            layers.append(DownBlock(c, ch(res // 2)))
            c, res = ch(res // 2), res // 2
        self.body = nn.Sequential(*layers)
        k = min(4, res)  # final conv shrinks a >= 4 px map to a small logit map; tiny maps get a smaller kernel
        self.logits = sn_conv(c, 1, k, 1, 0, bias=False)
        self.classifier = sn_conv(c, n_classes, 1) if n_classes > 0 else None
        self.out_res = res - k + 1

    def forward(self, x):
        h = self.body(x)
        adv = self.logits(h)
        cls = self.classifier(h).mean(dim=(2, 3)) if self.classifier is not None else None
        return adv, cls


class FusionBlock(nn.Module):
    """CSM step: add the deeper (already mixed) map, upsample x2, fixed 1x1 conv (ProjectedGAN's FeatureFusionBlock)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.out_conv = nn.Conv2d(cin, cout, 1)

    def forward(self, x, deeper=None):
        if deeper is not None:
            x = x + deeper
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class RandomProjection(nn.Module):
    """Fixed random CCM (+ CSM). Initialised from its own seed so D's projections never depend on global RNG."""

    def __init__(self, in_channels: list[int], cout: int, expand: bool, csm: bool, seed: int):
        super().__init__()
        mixed = [cout, cout * 2, cout * 4, cout * 8] if expand else [cout] * 4
        self.ccm = nn.ModuleList(nn.Conv2d(ci, co, 1) for ci, co in zip(in_channels, mixed, strict=True))
        self.csm = None
        self.channels = list(mixed)
        if csm:
            outs = [mixed[0], mixed[0], mixed[1], mixed[2]] if expand else list(mixed)
            self.csm = nn.ModuleList(FusionBlock(mixed[i], outs[i]) for i in range(4))
            self.channels = outs
        gen = torch.Generator().manual_seed(seed)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):  # PyTorch's default conv init, drawn from the private generator
                bound = 1.0 / math.sqrt(m.weight[0].numel())
                with torch.no_grad():
                    m.weight.copy_(torch.empty_like(m.weight).uniform_(-bound, bound, generator=gen))
                    m.bias.copy_(torch.empty_like(m.bias).uniform_(-bound, bound, generator=gen))
        self.requires_grad_(False)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        mixed = [conv(f) for conv, f in zip(self.ccm, feats, strict=True)]
        if self.csm is None:
            return mixed
        out = [None] * 4
        out[3] = self.csm[3](mixed[3])
        for i in (2, 1, 0):
            out[i] = self.csm[i](mixed[i], out[i + 1])
        return out


class ProjectedDiscriminator(nn.Module):
    """``forward(x)`` -> (B, N) logits (all scales' logit maps, flattened and concatenated).

    ``forward(x, return_classes=True)`` -> (logits, class_logits (B, n_classes) or None).
    Input: images (B, C, H, W) in [-1, 1], C = 1 or 3, H = W = ``img_resolution``.
    ``resize``: None feeds the feature network at native size; an int (ProjectedGAN: 224) upsamples first.
    The settings' keywords have no defaults: ``discriminator.pt``'s spec (pretrain's ``discriminator_spec``) has them.
    """

    def __init__(
        self,
        img_resolution: int,
        img_channels: int,
        *,
        pretrained: bool = False,
        weights_path: str | Path | None = None,
        resize: int | None,
        diffaug: str,
        proj_channels: int,
        scales: tuple[int, ...],
        channel_base: int,
        channel_max: int,
        n_classes: int,  # > 0: an auxiliary classifier head
        expand: bool = True,
        csm: bool = True,
        proj_seed: int = 0,
    ):
        super().__init__()
        scales = tuple(sorted(set(scales)))
        if not scales or any(s not in (0, 1, 2, 3) for s in scales):
            raise ValueError(f"scales must be a non-empty subset of (0, 1, 2, 3), got {scales}")
        if img_channels not in (1, 3):
            raise ValueError(f"img_channels must be 1 or 3, got {img_channels}")
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.resize = resize
        self.scales = scales
        self.n_classes = n_classes
        self.augment = DiffAugment(diffaug)
        self.feature_network = FeatureNetwork(pretrained=pretrained, weights_path=weights_path, resize=resize)
        self.projection = RandomProjection(self.feature_network.channels, proj_channels, expand, csm, proj_seed)
        feat_res = resize or img_resolution
        up = 2 if csm else 1  # CSM upsamples every map x2
        res = [max(1, feat_res // r * up) for r in self.feature_network.reductions]
        self.heads = nn.ModuleDict(
            {
                str(s): ScaleDiscriminator(
                    self.projection.channels[s], res[s], 8, channel_base, channel_max, n_classes=n_classes
                )
                for s in scales
            }
        )

    def forward(self, x: torch.Tensor, return_classes: bool = False, augment: bool = True):
        return self.logits(self.features(x, augment), return_classes)

    def features(self, x: torch.Tensor, augment: bool = True) -> list[torch.Tensor]:
        """Augmented, projected feature maps (frozen path). Reusable across D and G updates of one step."""
        if augment:
            x = self.augment(x)
        return self.projection(self.feature_network(x))

    def logits(self, feats: list[torch.Tensor], return_classes: bool = False):
        """Per-scale heads on ``features(x)``: (B, N) logits, plus class logits when ``return_classes``."""
        logits, classes = [], []
        for s in self.scales:
            adv, cls = self.heads[str(s)](feats[s])
            logits.append(adv.flatten(1))
            if cls is not None:
                classes.append(cls)
        logits = torch.cat(logits, dim=1)
        if not return_classes:
            return logits
        return logits, (torch.stack(classes).sum(0) if classes else None)

    # ---------------------------------------------------------------- checkpoint helpers
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything except the (reloadable, frozen) ImageNet feature network."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FEATURE_PREFIX)}

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        own = self.trainable_state_dict()
        missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        if missing or unexpected:
            raise KeyError(f"discriminator state mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
        self.load_state_dict(state, strict=False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.feature_network.train(False)  # frozen BN statistics
        self.projection.train(False)
        return self
