"""Diversity of generated images: intra-cluster perceptual distance (IC-LPIPS).

Ojha et al. 2021 ("Few-shot image generation via cross-domain correspondence"), as used by DFMGAN
(Duan et al. 2023) for few-shot defect images: every generated image joins the cluster of its nearest real
training image under the perceptual distance; the score is the mean pairwise distance inside each cluster,
averaged over clusters. It drops when the generator copies its training images (each cluster collapses
onto near-duplicates), which FID on tiny defect sets cannot see.

The headline value averages the clusters with >= 2 members. DFMGAN's code also reports the average over all
training images, counting clusters with < 2 members as 0 (its ``clpips``): given here as ``_all_clusters``.
As in DFMGAN, a cluster keeps at most ``max_per_cluster`` (200) members, the first generated ones.
"""

from __future__ import annotations

import torch

from syndgan.metrics.base import ImageSet, Metric, MetricInputError, count_images, select_images
from syndgan.metrics.perceptual import (
    PERCEPTUAL_NAMES,
    PerceptualLoss,
    cached_perceptual,
    distance_matrix,
    resolve_perceptual,
)


def intra_cluster_distance(
    real: ImageSet,
    fake: ImageSet,
    distance: PerceptualLoss,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    max_per_cluster: int | None = 200,
) -> dict[str, float | list[int]]:
    """IC distance of ``fake`` clustered on ``real``; same-size images.

    Returns ``value`` (mean over clusters with >= 2 members), ``all_clusters`` (DFMGAN's average over every
    real image, small clusters as 0), ``clusters`` (how many had >= 2 members) and ``assignment`` (the
    nearest real index of each generated image).
    """
    n_real, n_fake = count_images(real), count_images(fake)
    if n_real < 1 or n_fake < 2:
        raise MetricInputError(
            f"ic_{distance.name} needs >= 1 real and >= 2 generated images, got {n_real} real and {n_fake} generated"
        )
    to_real = distance_matrix(fake, real, distance, batch_size=batch_size, device=device)
    assignment = to_real.argmin(dim=1).tolist()  # ties: the first real image
    clusters: list[list[int]] = [[] for _ in range(n_real)]
    for i, c in enumerate(assignment):
        if max_per_cluster is None or len(clusters[c]) < max_per_cluster:
            clusters[c].append(i)
    scores = []
    for members in clusters:
        if len(members) < 2:
            continue
        subset = select_images(fake, members)
        within = distance_matrix(subset, subset, distance, batch_size=batch_size, device=device)
        i, j = torch.triu_indices(len(members), len(members), offset=1)
        scores.append(float(within[i, j].mean()))
    if not scores:
        raise MetricInputError(
            f"ic_{distance.name}: no real image is the nearest one of >= 2 of the {n_fake} generated images "
            f"({n_real} real); generate more images (DFMGAN uses 1000)"
        )
    return {
        "value": sum(scores) / len(scores),
        "all_clusters": sum(scores) / n_real,
        "clusters": len(scores),
        "assignment": assignment,
    }


class ICPerceptual(Metric):
    """``ic_lpips_vgg`` / ``ic_perceptual_effnet``: higher is more diverse.

    ``compute(real, fake)``: ``real`` are the training images the generator learned from, ``fake`` the
    generated ones. Keys: ``<name>``, ``<name>_all_clusters``, ``<name>_clusters``.
    """

    higher_is_better = True

    def __init__(self, kind: str = "auto", *, max_per_cluster: int | None = 200, **kwargs):
        self.kind = resolve_perceptual(kind)
        self.name = f"ic_{PERCEPTUAL_NAMES[self.kind]}"
        self.max_per_cluster = max_per_cluster
        super().__init__(**kwargs)

    def compute(self, real: ImageSet, fake: ImageSet) -> dict[str, float]:
        out = intra_cluster_distance(
            real,
            fake,
            cached_perceptual(self.kind, str(self.device)),
            batch_size=self.batch_size,
            device=self.device,
            max_per_cluster=self.max_per_cluster,
        )
        return {
            self.name: float(out["value"]),
            f"{self.name}_all_clusters": float(out["all_clusters"]),
            f"{self.name}_clusters": float(out["clusters"]),
        }
