"""``generators.pt``, the train_generation stage's output, read back for sampling (no training code here).

The file (``torch.load(weights_only=True)``) is one dict:

- ``format``: ``GENERATORS_FORMAT``; ``generator``: the kwargs (spec) that rebuild the network, with its ``name``;
- ``classes``: the dataset's defect classes ``[{"name", "id", "color"}]`` in id order;
- ``state``: ``{class name: G_ema weights}`` for every class that had train-pool images to fine-tune on;
- ``sources``: ``{class name: [image ids]}``, the train-pool images each class's generator was fine-tuned on;
- ``normal_ids``: the train-pool normal images the pretrained generator learned from (pretraining also saw the
  pool's defect images; every one of them is in the same pool);
- ``settings``, ``steps``, ``summary``: how it was trained.

A sampled image of a class derives from that class's ``sources`` and the ``normal_ids``: that is the provenance
the augment manifest records for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from syndgan.errors import DataError
from syndgan.models.snapshots import load_checkpoint, select_device

GENERATORS_FORMAT = "syndgan.class_generators/1"
KEYS = ("generator", "classes", "state", "sources", "normal_ids")


def read_generators(path: str | Path) -> dict[str, Any]:
    """A complete ``generators.pt`` dict, else a ``DataError`` naming ``path`` and what is wrong."""
    state = load_checkpoint(path)
    if state.get("format") != GENERATORS_FORMAT:
        raise DataError(path, f"not a train_generation generators file (format {state.get('format')!r})")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise DataError(path, f"incomplete generators file (missing {missing[0]!r})")
    unknown = sorted(set(state["state"]) - {c["name"] for c in state["classes"]})
    if unknown:
        raise DataError(path, f"weights for {unknown[0]!r}, which is not one of its classes")
    unsourced = sorted(set(state["state"]) - set(state["sources"]))
    if unsourced:
        raise DataError(path, f"no training images recorded for {unsourced[0]!r} (its provenance)")
    return state


def build_generator(spec: dict[str, Any], weights: dict[str, torch.Tensor], where: str | Path, what: str = ""):
    """The generator of ``spec`` (kwargs with its ``name``) holding ``weights``; a mismatch names ``where``."""
    from syndgan.models.generators import create_generator

    kwargs = dict(spec)
    G = create_generator(kwargs.pop("name"), **kwargs)
    try:
        G.load_state_dict(weights)
    except RuntimeError as e:
        raise DataError(where, f"{what}weights do not fit the stored generator ({str(e).splitlines()[0]})") from None
    return G


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, C, R, R) in [-1, 1] -> uint8 (B, R, R) for one channel, (B, R, R, 3) for three."""
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return x[:, 0].numpy() if x.shape[1] == 1 else x.permute(0, 2, 3, 1).numpy()


class ClassGenerators:
    """The fine-tuned generator of every class in a ``generators.pt``: whole images of a class from a seed."""

    def __init__(self, state: dict[str, Any], device: str | torch.device | None = None, source: str | Path = ""):
        self.source = str(source)
        self.device = torch.device(device) if device is not None else select_device("auto")
        self.classes = [dict(c) for c in state["classes"]]
        self.sources = {str(k): list(v) for k, v in state["sources"].items()}
        self.normal_ids = list(state["normal_ids"])
        spec = state["generator"]
        self.resolution, self.channels = int(spec["img_resolution"]), int(spec["img_channels"])
        self.networks = {
            cls: build_generator(spec, weights, self.source, f"{cls}: ").to(self.device).eval().requires_grad_(False)
            for cls, weights in state["state"].items()
        }

    @classmethod
    def from_file(cls, path: str | Path, device: str | torch.device | None = None) -> ClassGenerators:
        return cls(read_generators(path), device, path)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    def generator(self, name: str) -> torch.nn.Module:
        if name not in self.networks:
            raise DataError(self.source, f"no generator for class {name!r} (it had no train-pool image to learn from)")
        return self.networks[name]

    @torch.no_grad()
    def sample(self, name: str, seed: int, size: int | None = None) -> np.ndarray:
        """One uint8 image of class ``name``: latent and noise from ``seed`` alone (one image per forward pass, so
        image ``i`` never depends on what else is sampled), resized (bicubic) to ``size`` px when given.

        The global torch RNG is neither read nor reseeded: the per-pixel noise of the synthesis layers is drawn
        from a local generator (on the CPU, so a seed gives the same noise on every device) and passed in place
        of their ``noise_const`` buffers for this call only."""
        G = self.generator(name)
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(1, G.z_dim, generator=gen)
        noise = {
            key: torch.randn(buf.shape, generator=gen).to(buf)
            for key, buf in G.named_buffers()
            if key.rsplit(".", 1)[-1] == "noise_const"
        }
        x = torch.func.functional_call(G, noise, (z.to(self.device),), {"noise_mode": "const"}, strict=False)
        image = to_uint8(x)[0]
        if size is None or size == self.resolution:
            return image
        return np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC))
