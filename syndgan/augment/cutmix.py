"""CutMix (Yun et al. 2019), applied at classifier training time as in the paper's Table 4.

With probability ``prob`` a batch gets, for every image, a random box pasted from another image of the
batch; the soft targets mix by box area. Boxes are unaware of defects, so a small defect is often cut
away or pasted into a normal image: the reason CutMix helps little on small-defect data (paper V.A.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from syndgan.augment.base import AugmentMethod, register_method
from syndgan.errors import ConfigError


@dataclass
class CutMixSettings:
    """``augment.cutmix``."""

    alpha: float = 1.0  # box area ~ Beta(alpha, alpha)
    prob: float = 0.5  # chance a training batch is mixed

    def __post_init__(self):
        if self.alpha <= 0:
            raise ConfigError(f"alpha: must be > 0, got {self.alpha}")
        if not 0 <= self.prob <= 1:
            raise ConfigError(f"prob: must be in [0, 1], got {self.prob}")


@register_method
class CutMix(AugmentMethod):
    name = "cutmix"
    label = "CutMix"
    settings = CutMixSettings
    produces_images = False

    def __init__(self, alpha: float, prob: float):  # checked by CutMixSettings
        self.alpha = float(alpha)
        self.prob = float(prob)

    def options(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "prob": self.prob}

    def mix_batch(self, x, y, generator):
        import torch

        if x.shape[0] < 2 or torch.rand((), generator=generator).item() >= self.prob:
            return x, y
        # lambda ~ Beta(alpha, alpha) from two Gamma draws (torch's Beta takes no generator)
        g = torch.distributions.Gamma(torch.tensor(self.alpha), torch.tensor(1.0))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=generator)))
            a, b = g.sample(), g.sample()
        lam = float(a / (a + b))
        h, w = x.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy = int(torch.randint(0, h, (), generator=generator))
        cx = int(torch.randint(0, w, (), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        perm = torch.randperm(x.shape[0], generator=generator)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        kept = 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)  # the box actually pasted, after clipping
        return x, kept * y + (1.0 - kept) * y[perm]
