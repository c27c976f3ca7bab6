"""FID and KID (paper Table 1) on a pluggable feature space; the statistics are torchmetrics'.

Features are extracted once per image set (``extract_features``) and fed to torchmetrics through an
identity "feature network", so FID and KID of the same sets share one extraction pass.

KID is reported x10^3 like the paper (``KID_SCALE``; the key says so: ``kid_effnet_x1e3_mean``), as mean and
std over random equal-size subsets drawn with a fixed seed. Small defect sets are the normal case: the subset
size is capped at the smaller set (and reported), the estimate stays unbiased, and two draws from one
distribution give a mean near 0 (it can be slightly negative).
"""

from __future__ import annotations

import warnings
from abc import abstractmethod

import torch
import torch.nn as nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from syndgan.metrics.base import ImageSet, Metric, MetricInputError, count_images
from syndgan.metrics.extractors import cached_extractor, extract_features, resolve_extractor

KID_SCALE = 1e3


class _Precomputed(nn.Module):
    """Identity 'feature network': torchmetrics receives already-extracted features."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _check_features(real: torch.Tensor, fake: torch.Tensor, what: str, minimum: int = 2) -> None:
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1]:
        raise MetricInputError(f"{what}: feature shapes {tuple(real.shape)} and {tuple(fake.shape)} do not match")
    if len(real) < minimum or len(fake) < minimum:
        raise MetricInputError(
            f"{what} needs at least {minimum} real and {minimum} generated images, got {len(real)} real and {len(fake)} generated"
        )


def fid_from_features(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N, D), N >= 2 each."""
    _check_features(real, fake, "FID")
    metric = FrechetInceptionDistance(feature=_Precomputed(real.shape[1]), sync_on_compute=False)  # local sets
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid_from_features(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float, int]:
    """Unscaled KID (cubic polynomial kernel MMD^2): (mean, std over ``subsets``, subset size used).

    The subset size is ``min(subset_size, len(real), len(fake))``; it must be >= 2.
    """
    _check_features(real, fake, "KID")
    if subsets < 1 or subset_size < 2:
        raise MetricInputError(f"KID: subsets must be >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        metric = KernelInceptionDistance(
            feature=_Precomputed(real.shape[1]), subsets=subsets, subset_size=size, sync_on_compute=False
        )
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # torchmetrics draws subsets with the global CPU generator
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return float(mean), float(std), size


class _FeatureMetric(Metric):
    prefix: str

    def __init__(self, extractor: str = "auto", **kwargs):
        self.extractor = resolve_extractor(extractor)
        self.name = f"{self.prefix}_{self.extractor}"
        super().__init__(**kwargs)

    def features(self, images: ImageSet) -> torch.Tensor:
        """(N, D) float64 features of ``images`` with this metric's extractor (reusable across metrics)."""
        extractor = cached_extractor(self.extractor, str(self.device))
        return extract_features(
            images, extractor, batch_size=self.batch_size, device=self.device, progress=self.progress
        )

    def compute(self, real: ImageSet, fake: ImageSet) -> dict[str, float]:
        n_real, n_fake = count_images(real), count_images(fake)
        if n_real < 2 or n_fake < 2:  # fail before the (slow) feature extraction
            raise MetricInputError(
                f"{self.name} needs at least 2 real and 2 generated images, got {n_real} real and {n_fake} generated"
            )
        return self.compute_from_features(self.features(real), self.features(fake))

    @abstractmethod
    def compute_from_features(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        """The metric from ``features(real)`` and ``features(fake)``."""


class FID(_FeatureMetric):
    """``fid_<extractor>``: Frechet distance of pooled features; needs >= 2 images per set."""

    prefix = "fid"
    higher_is_better = False

    def compute_from_features(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        return {self.name: fid_from_features(real, fake)}


class KID(_FeatureMetric):
    """``kid_<extractor>``: keys ``<name>_x1e3_mean``, ``<name>_x1e3_std`` (x10^3) and ``<name>_subset_size``."""

    prefix = "kid"
    higher_is_better = False

    def __init__(self, extractor: str = "auto", *, subsets: int = 100, subset_size: int = 1000, seed: int = 0, **kw):
        super().__init__(extractor, **kw)
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed

    def compute_from_features(self, real: torch.Tensor, fake: torch.Tensor) -> dict[str, float]:
        mean, std, size = kid_from_features(
            real, fake, subsets=self.subsets, subset_size=self.subset_size, seed=self.seed
        )
        return {
            f"{self.name}_x1e3_mean": mean * KID_SCALE,
            f"{self.name}_x1e3_std": std * KID_SCALE,
            f"{self.name}_subset_size": float(size),
        }
