"""FastGAN-lite generator (Liu et al. 2021, as used by ProjectedGAN): the data-efficient, CPU-cheap option.

4x4 seed from w -> upsampling blocks (nearest x2, 3x3 conv, noise, BatchNorm, GLU; every other block has a
second conv) -> skip-layer excitation (SLE) from res/16 gating every block at >= 64 px -> 3x3 conv + tanh.

Interface as StyleGAN2 so downstream code does not care: ``mapping`` is pixel-norm + one linear layer
(num_ws = 1; ``w_avg`` tracked so truncation works), ``synthesis(ws, skips=None)`` with
``channels_at(res)`` and ``resolutions``. Output in [-1, 1] (tanh).
BatchNorm: call ``.eval()`` on the EMA copy for sampling (running statistics are copied along with it).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from syndgan.models.stylegan2 import EqualLinear, MappedGenerator, Mapping, check_resolution, check_skips


class LinearMapping(Mapping):
    """One linear layer, one W code."""

    def __init__(self, z_dim: int, w_dim: int, w_avg_beta: float = 0.995):
        super().__init__(z_dim, w_dim, 1, w_avg_beta)
        self.fc = EqualLinear(z_dim, w_dim)

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(z)


class NoiseInjection(nn.Module):
    def __init__(self, resolution: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resolution = resolution

    def forward(self, x, noise_mode: str = "random"):
        if noise_mode == "random":
            return x + self.weight * torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        if noise_mode == "const":
            return x + self.weight * self.noise_const
        return x


class ConvNoiseGLU(nn.Module):
    def __init__(self, cin: int, cout: int, resolution: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout * 2, 3, 1, 1, bias=False)
        self.noise = NoiseInjection(resolution)
        self.norm = nn.BatchNorm2d(cout * 2)

    def forward(self, x, noise_mode="random"):
        return F.glu(self.norm(self.noise(self.conv(x), noise_mode)), dim=1)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, resolution: int, double: bool):
        super().__init__()
        self.layers = nn.ModuleList([ConvNoiseGLU(cin, cout, resolution)])
        if double:
            self.layers.append(ConvNoiseGLU(cout, cout, resolution))

    def forward(self, x, noise_mode="random"):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        for layer in self.layers:
            x = layer(x, noise_mode)
        return x


class SLE(nn.Module):
    """Skip-layer excitation: a low-res feature map gates the channels of a high-res one."""

    def __init__(self, c_small: int, c_big: int):
        super().__init__()
        self.main = nn.Sequential(
            nn.AdaptiveAvgPool2d(4),
            nn.Conv2d(c_small, c_big, 4, 1, 0, bias=False),
            nn.SiLU(),
            nn.Conv2d(c_big, c_big, 1, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, small, big):
        return big * self.main(small)


class FastGANSynthesis(nn.Module):
    """``forward(ws, skips=None, noise_mode="random")``: ws (B, 1, w_dim) -> image in [-1, 1].

    ``skips`` {res: (B, channels_at(res), res, res)} are added to the features at ``res`` (after SLE).
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int, channel_max: int):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, check_resolution(img_resolution), img_channels
        self.num_ws = 1
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self._channels = {r: max(8, min(channel_max, channel_base // r)) for r in self.resolutions}
        c4 = self._channels[4]
        self.init = EqualLinear(w_dim, c4 * 2 * 16)
        self.init_norm = nn.BatchNorm2d(c4 * 2)
        self.ups = nn.ModuleDict()
        self.sles = nn.ModuleDict()
        for r in self.resolutions[1:]:
            # FastGAN alternates two-conv blocks (8, 32, 128, 512) and one-conv blocks (16, 64, ...)
            self.ups[str(r)] = UpBlock(self._channels[r // 2], self._channels[r], r, double=int(math.log2(r)) % 2 == 1)
            if r >= 64:
                self.sles[str(r)] = SLE(self._channels[r // 16], self._channels[r])
        self.to_img = nn.Conv2d(self._channels[img_resolution], img_channels, 3, 1, 1)

    def channels_at(self, res: int) -> int:
        return self._channels[res]

    def forward(self, ws: torch.Tensor, skips: dict[int, torch.Tensor] | None = None, noise_mode: str = "random"):
        check_skips(self, skips, ws.shape[0])
        skips = skips or {}
        x = self.init(ws[:, 0]).view(ws.shape[0], -1, 4, 4)
        x = F.glu(self.init_norm(x), dim=1)
        if 4 in skips:
            x = x + skips[4].to(x.dtype)
        feats = {4: x}
        for r in self.resolutions[1:]:
            x = self.ups[str(r)](x, noise_mode)
            if str(r) in self.sles:
                x = self.sles[str(r)](feats[r // 16], x)
            if r in skips:
                x = x + skips[r].to(x.dtype)
            feats[r] = x
        return torch.tanh(self.to_img(x))


class FastGANGenerator(MappedGenerator):
    def __init__(  # no defaults, as StyleGAN2Generator: PretrainSettings.generator_kwargs gives them
        self, *, z_dim: int, w_dim: int, img_resolution: int, img_channels: int, channel_base: int, channel_max: int
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.synthesis = FastGANSynthesis(w_dim, img_resolution, img_channels, channel_base, channel_max)
        self.num_ws = 1
        self.mapping = LinearMapping(z_dim, w_dim)
