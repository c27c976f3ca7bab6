"""One interface for every generator, and the factory that builds them.

Every generator ``G`` has ``z_dim``, ``w_dim``, ``img_resolution``, ``img_channels``, ``num_ws``,
``mapping(z, c=None, truncation_psi=1, truncation_cutoff=None, update_emas=False) -> ws (B, num_ws, w_dim)``,
``synthesis(ws, skips=None, noise_mode="random") -> images (B, img_channels, R, R)`` with
``synthesis.resolutions`` (4 .. R) and ``synthesis.channels_at(res)``, and
``G(z, c=None, truncation_psi=1, truncation_cutoff=None, noise_mode="random", skips=None)``.

Output range: images are meant to be in [-1, 1]. ``fastgan`` ends in tanh; ``stylegan2`` is linear
(StyleGAN2 convention) and can overshoot slightly: clamp before display or pixel metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from syndgan.models.fastgan import FastGANGenerator
from syndgan.models.stylegan2 import StyleGAN2Generator

GENERATORS: dict[str, type[nn.Module]] = {
    "stylegan2": StyleGAN2Generator,
    "fastgan": FastGANGenerator,
}


def create_generator(
    name: str,
    *,
    img_resolution: int,
    img_channels: int,
    pretrained: bool = False,
    checkpoint: str | Path | None = None,
    **kwargs: Any,
) -> nn.Module:
    """timm-style factory. ``kwargs``: the generator's sizes (``z_dim``, ``w_dim``, ``channel_base``,
    ``channel_max``; no defaults: ``PretrainSettings.generator_kwargs`` gives them all). ``pretrained=True`` loads
    G_ema from ``checkpoint`` (a ``generator.pt``)."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator '{name}' (known: {', '.join(GENERATORS)})")
    if img_channels not in (1, 3):
        raise ValueError(f"img_channels must be 1 or 3, got {img_channels}")
    G = GENERATORS[name](img_resolution=img_resolution, img_channels=img_channels, **kwargs)
    if pretrained:
        if checkpoint is None:
            raise ValueError("pretrained=True needs checkpoint=<path of a generator.pt>")
        state = torch.load(Path(checkpoint), map_location="cpu", weights_only=True)
        G.load_state_dict(state["G_ema"])
    return G


def generator_spec(name: str, **kwargs: Any) -> dict[str, Any]:
    """Plain-dict description stored in checkpoints so ``load_generator`` can rebuild the network."""
    return {"name": name, **kwargs}


def load_generator(path: str | Path, map_location: str | torch.device = "cpu") -> nn.Module:
    """Rebuild and load the EMA generator of a ``generator.pt`` written by pretraining (eval mode)."""
    from syndgan.errors import DataError

    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "generator checkpoint not found") from None
    except Exception as e:  # corrupt or foreign pickle
        raise DataError(path, f"not a readable generator checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "G_ema" not in state or "generator" not in state:
        raise DataError(path, "not a generator checkpoint (needs keys 'generator' and 'G_ema')")
    spec = dict(state["generator"])
    G = create_generator(spec.pop("name"), **spec)
    G.load_state_dict(state["G_ema"])
    return G.eval().requires_grad_(False)
