"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real *and* fake images before D.

Policy string: comma-separated subset of ``color``, ``translation``, ``cutout`` (``""`` disables).
Images are (B, C, H, W) in [-1, 1]. Randomness comes from torch's global RNG (or ``generator``), so a seeded
step is reproducible.

Ranges: ``translation`` and ``cutout`` fill with 0 (mid-grey), so their output stays within
``[min(x.min(), 0), max(x.max(), 0)]``. ``color`` (brightness +-0.5, saturation x[0, 2] on RGB only,
contrast x[0.5, 1.5]) deliberately leaves [-1, 1] like the original; no clamp, so gradients never vanish.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICY_OPS = ("color", "translation", "cutout")


def parse_policy(policy: str) -> list[str]:
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    for op in ops:
        if op not in POLICY_OPS:
            raise ValueError(f"unknown DiffAugment op '{op}' (known: {', '.join(POLICY_OPS)})")
    return ops


def _rand(shape, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=x.device if generator is None else generator.device).to(
        device=x.device, dtype=x.dtype
    )


def _randint(low: int, high: int, shape, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    dev = x.device if generator is None else generator.device
    return torch.randint(low, high, shape, generator=generator, device=dev).to(x.device)


def rand_brightness(x, generator=None):
    return x + (_rand((x.shape[0], 1, 1, 1), x, generator) - 0.5)


def rand_saturation(x, generator=None):
    if x.shape[1] == 1:  # grayscale has no saturation; still draw so RGB and L consume the RNG alike
        _rand((x.shape[0], 1, 1, 1), x, generator)
        return x
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) * 2) + mean


def rand_contrast(x, generator=None):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), x, generator) + 0.5) + mean


def rand_translation(x, generator=None, ratio: float = 0.125):
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = _randint(-sh, sh + 1, (b, 1, 1), x, generator)
    tx = _randint(-sw, sw + 1, (b, 1, 1), x, generator)
    gb, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    x_pad = F.pad(x, [1, 1, 1, 1])  # zero border: shifted-in pixels are mid-grey
    return x_pad.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2).contiguous()


def rand_cutout(x, generator=None, ratio: float = 0.5):
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = _randint(0, h + (1 - ch % 2), (b, 1, 1), x, generator)
    ox = _randint(0, w + (1 - cw % 2), (b, 1, 1), x, generator)
    gb, gy, gx = torch.meshgrid(
        torch.arange(b, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def diff_augment(x: torch.Tensor, policy: str, generator=None) -> torch.Tensor:
    for op in parse_policy(policy):
        for fn in _OPS[op]:
            x = fn(x, generator)
    return x


class DiffAugment(torch.nn.Module):
    """Module wrapper so the policy lives with the discriminator."""

    def __init__(self, policy: str):
        super().__init__()
        parse_policy(policy)  # fail at construction, not mid-training
        self.policy = policy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy) if self.policy else x

    def extra_repr(self) -> str:
        return f"policy={self.policy!r}"
