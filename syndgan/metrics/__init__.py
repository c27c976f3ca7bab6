"""Synthesis quality metrics (paper section IV.C): fidelity (FID, KID), reconstruction (LPIPS), diversity.

Every name says which network measured it; values under different names are not comparable:

- ``fid_inception`` / ``kid_inception``: FID / KID x10^3 on FID Inception-v3 pool features, the paper's
  Table 1 setting. Needs the torch-fidelity package and ``weights-inception-2015-12-05-6726825d.pth``.
- ``fid_effnet`` / ``kid_effnet``: the same statistics on ImageNet EfficientNet-Lite0 pooled features
  (packaged weights, always available). Not comparable with published Inception numbers.
- ``lpips_vgg``: LPIPS v0.1 (VGG16) between paired images, the paper's Tables 2 and 5. Needs
  ``vgg16-397923af.pth``.
- ``perceptual_effnet``: LPIPS-like distance on EfficientNet-Lite0 maps without learned heads.
- ``ic_lpips_vgg`` / ``ic_perceptual_effnet``: intra-cluster diversity of generated images (DFMGAN's
  IC-LPIPS) with that distance; higher is more diverse.

Generic names resolve to what this machine can compute and the metric reports its honest name:
``fid``/``kid`` -> ``*_inception`` if available else ``*_effnet``; ``lpips``/``perceptual`` -> ``lpips_vgg``
else ``perceptual_effnet``; ``ic_lpips``/``ic_perceptual`` likewise. Weights are looked up in
``$TORCH_HOME/hub/checkpoints/`` and never downloaded.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from syndgan.errors import ConfigError
from syndgan.metrics.base import (
    ImageSet,
    Metric,
    MetricInputError,
    MetricUnavailableError,
    iter_uint8_batches,
    to_uint8,
)
from syndgan.metrics.diversity import ICPerceptual, intra_cluster_distance
from syndgan.metrics.extractors import (
    create_extractor,
    extract_features,
    find_inception_weights,
    inception_unavailable_reason,
    resolve_extractor,
)
from syndgan.metrics.fid import FID, KID, KID_SCALE, fid_from_features, kid_from_features
from syndgan.metrics.perceptual import (
    PERCEPTUAL_NAMES,
    PerceptualLoss,
    PerceptualMetric,
    create_perceptual,
    distance_matrix,
    find_vgg16_weights,
    paired_distances,
    resolve_perceptual,
    vgg_unavailable_reason,
)

REGISTRY: dict[str, Callable[..., Metric]] = {
    "fid_inception": functools.partial(FID, "inception"),
    "fid_effnet": functools.partial(FID, "effnet"),
    "kid_inception": functools.partial(KID, "inception"),
    "kid_effnet": functools.partial(KID, "effnet"),
    "lpips_vgg": functools.partial(PerceptualMetric, "vgg"),
    "perceptual_effnet": functools.partial(PerceptualMetric, "effnet"),
    "ic_lpips_vgg": functools.partial(ICPerceptual, "vgg"),
    "ic_perceptual_effnet": functools.partial(ICPerceptual, "effnet"),
}

_REQUIREMENT: dict[str, Callable[[], str | None]] = {
    "fid_inception": inception_unavailable_reason,
    "kid_inception": inception_unavailable_reason,
    "lpips_vgg": vgg_unavailable_reason,
    "ic_lpips_vgg": vgg_unavailable_reason,
}

_GENERIC: dict[str, Callable[[], str]] = {
    "fid": lambda: f"fid_{resolve_extractor('auto')}",
    "kid": lambda: f"kid_{resolve_extractor('auto')}",
    "lpips": lambda: PERCEPTUAL_NAMES[resolve_perceptual("auto")],
    "perceptual": lambda: PERCEPTUAL_NAMES[resolve_perceptual("auto")],
    "ic_lpips": lambda: f"ic_{PERCEPTUAL_NAMES[resolve_perceptual('auto')]}",
    "ic_perceptual": lambda: f"ic_{PERCEPTUAL_NAMES[resolve_perceptual('auto')]}",
}


def unavailable_reason(name: str) -> str | None:
    """Why the registered metric ``name`` cannot run on this machine, or None when it can."""
    check = _REQUIREMENT.get(resolve_metric_name(name))
    return check() if check else None


def resolve_metric_name(name: str) -> str:
    """A registered name as is; a generic one (``fid``, ``kid``, ``lpips``...) -> the name it computes here."""
    if name in REGISTRY:
        return name
    if name in _GENERIC:
        return _GENERIC[name]()
    known = ", ".join([*REGISTRY, *_GENERIC])
    raise ConfigError(f"metric {name!r}: unknown; choose from {known}")


def get_metric(name: str, **kwargs) -> Metric:
    """A ready metric (networks load on first use). ``kwargs``: ``batch_size``, ``device``, ``progress``, and
    per metric ``subsets``/``subset_size``/``seed`` (KID) or ``max_per_cluster`` (IC).

    Raises ``MetricUnavailableError`` (naming the missing file or package) for an explicit name whose
    weights are absent, and ``ConfigError`` for an unknown name.
    """
    resolved = resolve_metric_name(name)
    if (reason := unavailable_reason(resolved)) is not None:
        raise MetricUnavailableError(f"metric {resolved!r} unavailable: {reason}")
    return REGISTRY[resolved](**kwargs)


def available_metrics() -> list[str]:
    """Registered names whose weights are on this machine, in registry order."""
    return [name for name in REGISTRY if unavailable_reason(name) is None]


__all__ = [
    "FID",
    "KID",
    "KID_SCALE",
    "PERCEPTUAL_NAMES",
    "REGISTRY",
    "ICPerceptual",
    "ImageSet",
    "Metric",
    "MetricInputError",
    "MetricUnavailableError",
    "PerceptualLoss",
    "PerceptualMetric",
    "available_metrics",
    "create_extractor",
    "create_perceptual",
    "distance_matrix",
    "extract_features",
    "fid_from_features",
    "find_inception_weights",
    "find_vgg16_weights",
    "get_metric",
    "inception_unavailable_reason",
    "intra_cluster_distance",
    "iter_uint8_batches",
    "kid_from_features",
    "paired_distances",
    "resolve_extractor",
    "resolve_metric_name",
    "resolve_perceptual",
    "to_uint8",
    "unavailable_reason",
    "vgg_unavailable_reason",
]
