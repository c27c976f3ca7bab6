"""Synthesis quality of image sets (paper Table 1): FID / KID against real defects and IC diversity, per
class and pooled over classes (``"all"``).

Every set is judged the same way: its images of class ``c`` against the *reference* images of class ``c``
(the real test defects) with the registry's feature metrics (``fid_*``, ``kid_*``: features are extracted
once per image set and extractor, FID and KID share them; the pooled set reuses the per-class features),
and its diversity with the registry's IC metric (``ic_*``: images clustered on the *anchor* images, the real
train defects the masks came from). With a handful of real defects per class these numbers are noisy:
compare a method against the real-vs-real row computed by the same code on the same reference.

A value that cannot be computed (fewer than 2 images, no cluster with 2 members...) is ``None`` and the
entry's ``notes`` say why; nothing raises for small sets.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from syndgan.errors import ConfigError
from syndgan.metrics import (
    FID,
    KID,
    ICPerceptual,
    MetricInputError,
    get_metric,
    intra_cluster_distance,
    resolve_metric_name,
)
from syndgan.metrics.perceptual import PerceptualLoss, cached_perceptual
from syndgan.report.tables import ALL

log = logging.getLogger(__name__)

REFERENCE = "__reference__"  # the reference set's key in the feature cache

ImagesByClass = Mapping[str, Sequence[Any]]


def create_quality_metrics(
    names: Sequence[str],
    *,
    kid_subsets: int = 100,
    kid_subset_size: int = 1000,
    seed: int = 0,
    ic_max_per_cluster: int | None = 200,
    batch_size: int = 32,
    device: str | torch.device | None = None,
) -> list[FID | KID | ICPerceptual]:
    """Registry metrics for unpaired sets: ``fid*``, ``kid*`` and ``ic_*`` names (generic ones resolve to
    what this machine can compute; the metric's ``name`` says which)."""
    out = []
    common = {"batch_size": batch_size, "device": device}
    for name in names:
        resolved = resolve_metric_name(name)
        if resolved.startswith("kid_"):
            out.append(get_metric(resolved, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed, **common))
        elif resolved.startswith("fid_"):
            out.append(get_metric(resolved, **common))
        elif resolved.startswith("ic_"):
            out.append(get_metric(resolved, max_per_cluster=ic_max_per_cluster, **common))
        else:
            raise ConfigError(
                f"metric {name!r} ({resolved}) compares paired images; synthesis quality needs fid/kid/ic"
            )
    return out


def metric_keys(metric: FID | KID | ICPerceptual) -> list[str]:
    """The keys a metric writes (present in every entry, ``None`` where not computable)."""
    if isinstance(metric, KID):
        return [f"{metric.name}_x1e3_mean", f"{metric.name}_x1e3_std", f"{metric.name}_subset_size"]
    if isinstance(metric, ICPerceptual):
        return [metric.name, f"{metric.name}_all_clusters", f"{metric.name}_clusters"]
    return [metric.name]


class FeatureCache:
    """Features of each (set, class) per extractor, extracted once."""

    def __init__(self):
        self._store: dict[tuple[str, str, str], torch.Tensor] = {}
        self.images = 0  # images passed through an extractor (for timing logs)

    def get(self, metric: FID | KID, set_name: str, cls: str, images: Sequence[Any]) -> torch.Tensor:
        key = (metric.extractor, set_name, cls)
        if key not in self._store:
            self._store[key] = metric.features(list(images))
            self.images += len(images)
        return self._store[key]


class MemoizedDistance(torch.nn.Module):
    """A perceptual distance whose feature maps are computed once per distinct image (keyed by content).

    IC computes the maps of a set's images against the anchors, again for every cluster, and again for
    the pooled entry; the values are those of the wrapped distance, only the repeated forward passes go.
    """

    def __init__(self, distance: PerceptualLoss):
        super().__init__()
        self.distance = distance
        self.name = distance.name
        self._memo: dict[bytes, list[torch.Tensor]] = {}

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        keys = [hashlib.sha1(xi.detach().cpu().contiguous().numpy().tobytes()).digest() for xi in x]
        first = {}
        for i, k in enumerate(keys):
            first.setdefault(k, i)
        missing = [i for k, i in first.items() if k not in self._memo]
        if missing:
            maps = self.distance.features(x[missing])
            for j, i in enumerate(missing):
                self._memo[keys[i]] = [f[j : j + 1] for f in maps]
        layers = len(self._memo[keys[0]])
        return [torch.cat([self._memo[k][layer] for k in keys]) for layer in range(layers)]

    def pairwise_from_features(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        return self.distance.pairwise_from_features(fa, fb)


def _pooled(by_class: ImagesByClass, classes: Sequence[str]) -> list[Any]:
    return [im for c in classes for im in by_class.get(c, [])]


def synthesis_quality(
    reference: ImagesByClass,
    candidates: Mapping[str, ImagesByClass],
    anchors: ImagesByClass,
    metrics: Sequence[FID | KID | ICPerceptual],
    classes: Sequence[str],
    *,
    diversity: Mapping[str, ImagesByClass] | None = None,
    cache: FeatureCache | None = None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """``{set: {class: entry, ..., "all": entry}}`` for every set in ``candidates``.

    ``reference[c]``: real images of class ``c`` every set is compared with (FID/KID); ``candidates[s][c]``:
    the images of set ``s``; ``anchors[c]``: the images IC clusters on. ``diversity[s][c]`` replaces the
    images whose IC is measured for set ``s`` (the real-vs-real row measures the real test defects' own
    spread, not the train set clustered on itself). An entry holds ``images``, ``reference_images``,
    every metric key (float or ``None``) and ``notes`` (why a value is missing; "" when none is).
    """
    cache = cache or FeatureCache()
    feature_metrics = [m for m in metrics if isinstance(m, (FID, KID))]
    ic_metrics = [m for m in metrics if isinstance(m, ICPerceptual)]
    diversity = diversity or {}
    memo = {m.name: MemoizedDistance(cached_perceptual(m.kind, str(m.device))) for m in ic_metrics}
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for set_name, by_class in candidates.items():
        result[set_name] = {}
        div = diversity.get(set_name, by_class)
        for cls in [*classes, ALL]:
            if cls == ALL:
                images, ref = _pooled(by_class, classes), _pooled(reference, classes)
                div_images, anc = _pooled(div, classes), _pooled(anchors, classes)
            else:
                images, ref = list(by_class.get(cls, [])), list(reference.get(cls, []))
                div_images, anc = list(div.get(cls, [])), list(anchors.get(cls, []))
            entry: dict[str, Any] = {"images": len(images), "reference_images": len(ref)}
            notes: list[str] = []
            skipped = []
            for m in feature_metrics:
                keys = metric_keys(m)
                if len(images) < 2 or len(ref) < 2:
                    entry.update(dict.fromkeys(keys))
                    skipped.append(m.name)
                    continue
                if cls == ALL:  # pooled features = the per-class features together: no second extraction
                    fake = torch.cat([cache.get(m, set_name, c, by_class[c]) for c in classes if by_class.get(c)])
                    real = torch.cat([cache.get(m, REFERENCE, c, reference[c]) for c in classes if reference.get(c)])
                else:
                    fake = cache.get(m, set_name, cls, images)
                    real = cache.get(m, REFERENCE, cls, ref)
                entry.update({k: float(v) for k, v in m.compute_from_features(real, fake).items()})
            if skipped:
                notes.append(f"{', '.join(skipped)}: n/a ({_n(len(images))}, {len(ref)} real test; need >= 2 each)")
            for m in ic_metrics:
                keys = metric_keys(m)
                try:
                    if len(div_images) < 2 or not anc:
                        raise MetricInputError("too few images")
                    out = intra_cluster_distance(
                        anc, div_images, memo[m.name], batch_size=m.batch_size, device=m.device,
                        max_per_cluster=m.max_per_cluster,
                    )  # fmt: skip
                    entry.update(dict(zip(keys, (out["value"], out["all_clusters"], out["clusters"]), strict=True)))
                    entry.update({k: float(entry[k]) for k in keys})
                except MetricInputError:
                    entry.update(dict.fromkeys(keys))
                    why = (
                        f"{_n(len(div_images))}, {len(anc)} anchors"
                        if len(div_images) < 2 or not anc
                        else f"no anchor is the nearest of >= 2 of the {len(div_images)} images"
                    )
                    notes.append(f"{m.name}: n/a ({why})")
            entry["notes"] = "; ".join(notes)
            result[set_name][cls] = entry
            log.debug("%s / %s: %s", set_name, cls, entry)
    return result


def _n(count: int) -> str:
    return f"{count} image" if count == 1 else f"{count} images"
