"""StyleGAN2-style generator (Karras et al. 2020) in pure PyTorch: no custom CUDA ops.

Mapping MLP (equalized lr, lr multiplier 0.01, tracked ``w_avg`` for truncation) -> W+ of ``num_ws``
vectors -> synthesis: learned 4x4 constant, per resolution two modulated/demodulated 3x3 convs with
per-pixel noise, and a "skip" toRGB output summed across resolutions.

Simplifications vs. the official code, chosen for CPU speed and readability: bilinear upsampling instead of
FIR-filtered transposed convs; modulation applied to activations (``x * s``, conv, ``* d``), which is
mathematically the same as modulating the weights; no conv clamping.

Output convention: linear (no tanh), trained towards [-1, 1]; clamp before display or saving.
"""

from __future__ import annotations

import abc
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

SQRT2 = math.sqrt(2.0)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def check_resolution(res: int) -> int:
    if res < 8 or res > 1024 or res & (res - 1):
        raise ValueError(f"img_resolution must be a power of 2 in [8, 1024], got {res}")
    return res


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate (runtime weight scaling)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.weight_gain = lr_mul / math.sqrt(cin)
        self.bias_gain = lr_mul
        self.activation = activation

    def forward(self, x):
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.bias_gain)
        return F.leaky_relu(x, 0.2) * SQRT2 if self.activation else x


class Mapping(nn.Module, abc.ABC):
    """What every generator's mapping shares: z -> w (``embed``, the subclass's layers), broadcast to
    (B, num_ws, w_dim), and the tracked average ``w_avg`` that truncation pulls towards."""

    def __init__(self, z_dim: int, w_dim: int, num_ws: int, w_avg_beta: float = 0.995):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    @abc.abstractmethod
    def embed(self, z: torch.Tensor) -> torch.Tensor:
        """z (normalized) -> w: each generator's own layers."""

    def forward(self, z, c=None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None, update_emas=False):
        w = self.embed(normalize_2nd_moment(z.float()))
        if update_emas:  # in fp32 whatever autocast made w of: the buffer is fp32
            self.w_avg.copy_(w.detach().float().mean(0).lerp(self.w_avg, self.w_avg_beta))
        return truncate(w.unsqueeze(1).repeat(1, self.num_ws, 1), self.w_avg, truncation_psi, truncation_cutoff)


class MappingNetwork(Mapping):
    """StyleGAN2's: an MLP with equalized lr and lr multiplier 0.01."""

    def __init__(
        self, z_dim: int, w_dim: int, num_ws: int, num_layers: int = 2, lr_mul: float = 0.01, w_avg_beta: float = 0.995
    ):
        super().__init__(z_dim, w_dim, num_ws, w_avg_beta)
        dims = [z_dim] + [w_dim] * num_layers
        self.net = nn.Sequential(
            *[EqualLinear(dims[i], dims[i + 1], lr_mul=lr_mul, activation=True) for i in range(num_layers)]
        )

    def embed(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float, cutoff: int | None) -> torch.Tensor:
    if psi == 1:
        return ws
    cutoff = ws.shape[1] if cutoff is None else cutoff
    ws = ws.clone()
    ws[:, :cutoff] = w_avg.lerp(ws[:, :cutoff], psi)
    return ws


class ModulatedConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.weight_gain = 1.0 / math.sqrt(cin * k * k)
        self.demodulate, self.up, self.padding = demodulate, up, k // 2

    def forward(self, x, w):
        styles = self.affine(w)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = F.conv2d(x * styles[:, :, None, None], weight, padding=self.padding)
        if self.demodulate:
            d = ((weight.unsqueeze(0) * styles[:, None, :, None, None]).square().sum(dim=(2, 3, 4)) + 1e-8).rsqrt()
            x = x * d[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv(cin, cout, 3, w_dim, demodulate=True, up=up)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.resolution = resolution

    def forward(self, x, w, noise_mode: str = "random"):
        x = self.conv(x, w)
        if noise_mode == "random":
            x = x + torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device, dtype=x.dtype) * (
                self.noise_strength
            )
        elif noise_mode == "const":
            x = x + self.noise_const * self.noise_strength
        return F.leaky_relu(x + self.bias[None, :, None, None], 0.2) * SQRT2


class ToRGB(nn.Module):
    def __init__(self, cin: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv(cin, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, img_channels: int):
        super().__init__()
        self.resolution = resolution
        if resolution == 4:
            self.const = nn.Parameter(torch.randn(cout, 4, 4))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(cin, cout, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(cout, cout, w_dim, resolution)
        self.torgb = ToRGB(cout, img_channels, w_dim)
        self.num_conv = 1 if resolution == 4 else 2

    def forward(self, x, img, ws, skip=None, noise_mode="random"):
        if self.conv0 is None:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
            x = self.conv1(x, ws[:, 0], noise_mode)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode)
            x = self.conv1(x, ws[:, 1], noise_mode)
        if skip is not None:
            x = x + skip.to(x.dtype)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
        return x, img


class StyleGAN2Synthesis(nn.Module):
    """``forward(ws, skips=None, noise_mode="random")``: ws (B, num_ws, w_dim) -> image (B, C, R, R).

    ``skips``: optional {resolution: (B, channels_at(res), res, res)} added to the block output features at
    that resolution, before its toRGB (the entry point for an encoder's U-Net skips).
    """

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int, channel_max: int):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, check_resolution(img_resolution), img_channels
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        self._channels = {r: max(8, min(channel_max, channel_base // r)) for r in self.resolutions}
        blocks, cin = [], 0
        for r in self.resolutions:
            blocks.append(SynthesisBlock(cin, self._channels[r], w_dim, r, img_channels))
            cin = self._channels[r]
        self.blocks = nn.ModuleList(blocks)
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def channels_at(self, res: int) -> int:
        return self._channels[res]

    def forward(self, ws: torch.Tensor, skips: dict[int, torch.Tensor] | None = None, noise_mode: str = "random"):
        check_skips(self, skips, ws.shape[0])
        x = img = None
        i = 0
        for block in self.blocks:
            block_ws = ws[:, i : i + block.num_conv + 1]
            x, img = block(x, img, block_ws, None if skips is None else skips.get(block.resolution), noise_mode)
            i += block.num_conv
        return img


def check_skips(synthesis: nn.Module, skips: dict | None, batch: int) -> None:
    for res, t in (skips or {}).items():
        want = (batch, synthesis.channels_at(res), res, res) if res in synthesis.resolutions else None
        if want is None or tuple(t.shape) != want:
            raise ValueError(f"skip at resolution {res}: expected shape {want}, got {tuple(t.shape)}")


class MappedGenerator(nn.Module):
    """What every generator (StyleGAN2, FastGAN) is: ``mapping`` (z -> W codes, with ``w_avg``) then ``synthesis``
    (codes and optional encoder skips -> image); the synthesis network calls ``synthesis`` directly."""

    def forward(
        self,
        z,
        c=None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        skips: dict[int, torch.Tensor] | None = None,
        update_emas: bool = False,
    ):
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, skips=skips, noise_mode=noise_mode)


class StyleGAN2Generator(MappedGenerator):
    """``G(z)`` -> images (B, img_channels, R, R). See module doc for the output range.

    The sizes have no defaults: ``PretrainSettings.generator_kwargs`` gives them (and checkpoints store them).
    """

    def __init__(
        self,
        *,
        z_dim: int,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int,
        channel_max: int,
        mapping_layers: int = 2,
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.synthesis = StyleGAN2Synthesis(w_dim, img_resolution, img_channels, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, num_layers=mapping_layers)
