"""Pluggable feature extractors for FID / KID, chosen by what is on disk (nothing is ever downloaded).

- ``inception``: the TF-ported FID Inception-v3 (2048-d pool features), torchmetrics' ``NoTrainInceptionV3``.
  Needs the ``torch-fidelity`` package and its weights file in the torch hub cache
  (``$TORCH_HOME/hub/checkpoints/``; torch-fidelity names it ``weights-inception-2015-12-05-6726825d.pth``,
  pytorch-fid ``pt_inception-2015-12-05-6726825d.pth``: same sha256 prefix, same tensors). The standard
  feature space of published FID/KID numbers (paper Table 1).
- ``effnet``: ImageNet EfficientNet-Lite0 global-pooled head features (1280-d) from the packaged weights,
  always available. Its values are NOT comparable with Inception FID/KID: metric names carry the extractor.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from syndgan.metrics.base import ImageSet, MetricUnavailableError, count_images, default_device, iter_uint8_batches

log = logging.getLogger(__name__)

EXTRACTORS = ("inception", "effnet")
INCEPTION_WEIGHT_FILES = (
    "weights-inception-2015-12-05-6726825d.pth",  # torch-fidelity / torchmetrics
    "pt_inception-2015-12-05-6726825d.pth",  # pytorch-fid
)


def hub_checkpoints_dir() -> Path:
    """Where torch.hub keeps downloaded weights: ``$TORCH_HOME/hub/checkpoints`` (default ~/.cache/torch)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def find_inception_weights() -> Path | None:
    """The FID Inception-v3 weights file in the torch hub cache, or None."""
    for name in INCEPTION_WEIGHT_FILES:
        path = hub_checkpoints_dir() / name
        if path.is_file():
            return path
    return None


def inception_unavailable_reason(weights_path: str | Path | None = None) -> str | None:
    """Why the ``inception`` extractor cannot be built here, or None when it can."""
    if importlib.util.find_spec("torch_fidelity") is None:
        return "the torch-fidelity package (needed by torchmetrics' Inception-v3) is not installed"
    if weights_path is not None:
        return None if Path(weights_path).is_file() else f"Inception-v3 weights file {weights_path} does not exist"
    if find_inception_weights() is None:
        return (
            f"no Inception-v3 FID weights in {hub_checkpoints_dir()} (looked for {', '.join(INCEPTION_WEIGHT_FILES)})"
        )
    return None


def resolve_extractor(kind: str = "auto") -> str:
    """``auto`` -> ``inception`` when available else ``effnet``; an explicit unavailable kind raises."""
    if kind == "auto":
        return "inception" if inception_unavailable_reason() is None else "effnet"
    if kind not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {kind!r}; choose from auto, {', '.join(EXTRACTORS)}")
    if kind == "inception" and (reason := inception_unavailable_reason()) is not None:
        raise MetricUnavailableError(f"Inception-v3 extractor unavailable: {reason}; use the 'effnet' extractor")
    return kind


class InceptionFeatures(nn.Module):
    """FID Inception-v3 pool features (B, 2048) from uint8 images (B, C, H, W), C in {1, 3}, any size."""

    name = "inception"
    num_features = 2048

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        if (reason := inception_unavailable_reason(weights_path)) is not None:
            raise MetricUnavailableError(f"Inception-v3 extractor unavailable: {reason}")
        from torchmetrics.image.fid import NoTrainInceptionV3

        path = Path(weights_path) if weights_path is not None else find_inception_weights()
        # An explicit path keeps torch-fidelity away from its download code path.
        self.net = NoTrainInceptionV3(
            name="inception-v3-compat", features_list=[str(self.num_features)], feature_extractor_weights_path=str(path)
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x.to(torch.uint8))  # resizes to 299 px itself, TF-style


class EffNetFeatures(nn.Module):
    """ImageNet EfficientNet-Lite0 pooled features (B, 1280) from uint8 images (B, C, H, W) at 224 px."""

    name = "effnet"

    def __init__(self, weights_path: str | Path | None = None):
        super().__init__()
        from syndgan.models.features import PooledFeatures

        self.net = PooledFeatures(pretrained=True, weights_path=weights_path)
        self.num_features = self.net.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def create_extractor(kind: str = "auto", weights_path: str | Path | None = None) -> nn.Module:
    """A frozen feature extractor with ``.name`` (``inception``/``effnet``) and ``.num_features``."""
    if kind == "auto":
        kind = resolve_extractor(kind)
    if kind == "inception":  # raises MetricUnavailableError naming what is missing
        return InceptionFeatures(weights_path)
    if kind == "effnet":
        return EffNetFeatures(weights_path)
    raise ValueError(f"unknown feature extractor {kind!r}; choose from auto, {', '.join(EXTRACTORS)}")


@functools.lru_cache(maxsize=4)
def cached_extractor(kind: str, device: str) -> nn.Module:
    """One shared extractor per (kind, device): FID, KID and the benchmark reuse the loaded weights."""
    return create_extractor(kind).to(device)


@torch.inference_mode()
def extract_features(
    images: ImageSet,
    extractor: str | nn.Module = "auto",
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Features (N, D) float64 on CPU of a set of uint8 images (see ``syndgan.metrics.base``)."""
    device = default_device(device)
    if isinstance(extractor, str):
        extractor = cached_extractor(resolve_extractor(extractor), str(device))
    else:
        extractor = extractor.to(device)
    n = count_images(images)
    feats = []
    with tqdm(total=n, desc=f"{getattr(extractor, 'name', 'features')} features", disable=not progress) as bar:
        for batch in iter_uint8_batches(images, batch_size):
            feats.append(extractor(batch.to(device)).double().cpu())
            bar.update(len(batch))
    if not feats:
        return torch.zeros(0, int(extractor.num_features), dtype=torch.float64)
    return torch.cat(feats)
