"""What every metric shares: the ``Metric`` interface, its errors and the image inputs it accepts.

Inputs are sets of 8-bit images: a uint8 tensor (N, C, H, W) or (N, H, W), a uint8 numpy stack (N, H, W) or
(N, H, W, C), or a sequence of PIL images / HxW(xC) uint8 arrays / (C, H, W) uint8 tensors. C is 1 or 3.
Images of a set may differ in size; consecutive images of the same shape are batched together.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from syndgan.errors import SyndganError

ImageSet = torch.Tensor | np.ndarray | Sequence[Any]


class MetricUnavailableError(SyndganError, RuntimeError):
    """A metric's network weights (or package) are not on this machine; nothing is ever downloaded."""


class MetricInputError(SyndganError, ValueError):
    """The images given to a metric cannot produce a value (too few, wrong dtype, mismatched shapes...)."""


def default_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as given, else CUDA when present, else CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def to_uint8(x: torch.Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> torch.Tensor:
    """Float images in ``value_range`` (GAN outputs: [-1, 1]) -> uint8 [0, 255], rounded, clamped."""
    lo, hi = value_range
    y = (x.detach().float() - lo) * (255.0 / (hi - lo))
    return y.round().clamp(0, 255).to(torch.uint8)


def uint8_to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the GAN / perceptual-network convention)."""
    return x.float() / 127.5 - 1.0


def count_images(images: ImageSet) -> int:
    return int(images.shape[0]) if isinstance(images, (torch.Tensor, np.ndarray)) else len(images)


def select_images(images: ImageSet, index: Sequence[int]) -> ImageSet:
    """The sub-set ``images[index]`` in the same container kind."""
    if isinstance(images, torch.Tensor):
        return images[torch.as_tensor(list(index), dtype=torch.long)]
    if isinstance(images, np.ndarray):
        return images[np.asarray(list(index), dtype=np.int64)]
    return [images[i] for i in index]


def _check_chw(t: torch.Tensor, what: str) -> torch.Tensor:
    if t.dtype != torch.uint8:
        raise MetricInputError(
            f"{what}: expected uint8 images in [0, 255], got {t.dtype}; "
            "convert GAN outputs with syndgan.metrics.to_uint8(x, value_range=(-1, 1))"
        )
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise MetricInputError(f"{what}: expected (C, H, W) with C in {{1, 3}}, got shape {tuple(t.shape)}")
    return t


def _item_to_chw(item: Any, i: int) -> torch.Tensor:
    """One image of a sequence -> uint8 tensor (C, H, W)."""
    from PIL import Image

    what = f"image {i}"
    if isinstance(item, Image.Image):
        if item.mode not in ("L", "RGB"):
            item = item.convert("L" if item.mode in ("1", "I", "I;16", "F") else "RGB")
        item = np.asarray(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise MetricInputError(f"{what}: expected a uint8 array, got {item.dtype}")
        if item.ndim == 2:
            item = item[:, :, None]
        if item.ndim != 3:
            raise MetricInputError(f"{what}: expected an HxW or HxWxC array, got shape {item.shape}")
        chw = np.array(item.transpose(2, 0, 1), copy=True)  # a copy: arrays of PIL images are read-only
        return _check_chw(torch.from_numpy(chw), what)
    if isinstance(item, torch.Tensor):
        return _check_chw(item.unsqueeze(0) if item.dim() == 2 else item, what)
    raise MetricInputError(f"{what}: unsupported type {type(item).__name__} (PIL image, numpy array or tensor)")


def iter_uint8_batches(images: ImageSet, batch_size: int) -> Iterator[torch.Tensor]:
    """Yield uint8 batches (B, C, H, W) of at most ``batch_size`` same-shape images, in order."""
    if batch_size < 1:
        raise MetricInputError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise MetricInputError(
                f"image stack: expected uint8 (N, H, W) or (N, H, W, C), got {images.dtype} {images.shape}"
            )
        images = torch.from_numpy(images[..., None] if images.ndim == 3 else images).permute(0, 3, 1, 2)
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = images.unsqueeze(1)
        if images.dim() != 4:
            raise MetricInputError(f"image tensor: expected (N, C, H, W), got shape {tuple(images.shape)}")
        _check_chw(images[0] if images.shape[0] else images.new_empty(images.shape[1:]), "image tensor")
        for start in range(0, images.shape[0], batch_size):
            yield images[start : start + batch_size].contiguous()
        return
    pending: list[torch.Tensor] = []
    for i, item in enumerate(images):
        chw = _item_to_chw(item, i)
        if pending and (chw.shape != pending[0].shape or len(pending) == batch_size):
            yield torch.stack(pending)
            pending = []
        pending.append(chw)
    if pending:
        yield torch.stack(pending)


class Metric(ABC):
    """A synthesis quality metric: ``compute(real, fake) -> {key: float}``; every key starts with ``name``.

    ``name`` says what was measured with what network (``fid_effnet``, ``lpips_vgg``...): values under
    different names are not comparable. Networks load lazily on the first ``compute`` and are cached.
    """

    name: str
    higher_is_better: bool

    def __init__(self, *, batch_size: int = 32, device: str | torch.device | None = None, progress: bool = False):
        if batch_size < 1:
            raise MetricInputError(f"{self.name}: batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self.device = default_device(device)
        self.progress = progress

    @abstractmethod
    def compute(self, real: ImageSet, fake: ImageSet) -> dict[str, float]:
        """Compare generated images ``fake`` against reference images ``real``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, device={str(self.device)!r})"
