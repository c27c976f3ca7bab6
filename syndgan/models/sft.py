"""Spatial feature transform (SFT, Wang et al. 2018) in the synthesis network's encoder (paper Sec. III.B.3).

The segmentation map goes through two separate small conv branches: one ends in a sigmoid and gives the
per-pixel, per-channel scale ``gamma`` in (0, 1), the other gives the shift ``beta``; the block's features
become ``x * gamma + beta``. Where the map is empty (background everywhere, e.g. a normal image) both are
spatially constant (the branches see a constant input), so the transform is a plain per-channel affine
there and the map only acts where a defect is drawn.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def resize_map(seg: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Down-sample a segmentation map to a feature size by area averaging (a class-probability map)."""
    if tuple(seg.shape[-2:]) == tuple(size):
        return seg
    if seg.shape[-2] % size[0] == 0 and seg.shape[-1] % size[1] == 0:
        return F.adaptive_avg_pool2d(seg, size)
    return F.interpolate(seg, size=size, mode="bilinear", align_corners=False, antialias=True)


class SFTLayer(nn.Module):
    """``forward(x, seg) -> x * gamma(seg) + beta(seg)``; ``seg`` is resized to ``x``'s size first."""

    def __init__(self, channels: int, seg_channels: int, hidden: int):
        super().__init__()

        def branch(sigmoid: bool) -> nn.Sequential:
            # Replicate padding: an empty map gives exactly constant gamma/beta, borders included.
            layers = [
                nn.Conv2d(seg_channels, hidden, 3, 1, 1, padding_mode="replicate"),
                nn.LeakyReLU(0.2),
                nn.Conv2d(hidden, channels, 3, 1, 1, padding_mode="replicate"),
            ]
            return nn.Sequential(*layers, nn.Sigmoid()) if sigmoid else nn.Sequential(*layers)

        self.scale = branch(sigmoid=True)
        self.shift = branch(sigmoid=False)

    def modulation(self, seg: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta), each (B, channels, *size)."""
        seg = resize_map(seg, size)
        return self.scale(seg), self.shift(seg)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.modulation(seg, tuple(x.shape[-2:]))
        return x * gamma + beta
