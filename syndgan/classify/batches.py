"""Which training images each classifier step draws, and how much each class weighs in the loss.

Every batch is a pure function of (seed, step): consecutive slices of seeded shuffles of a pool, so a run
resumed at any step draws exactly what the uninterrupted run would have. ``SyntheticUse`` picks the streams:
one pool of real and synthetic images (default), a fixed synthetic share of every batch (``share``), or
synthetic images only for the first steps, real images only after them (``pretrain``).
"""

from __future__ import annotations

import torch

from syndgan.classify.settings import SyntheticUse

SYNTHETIC_SEED = 7919  # offset of the synthetic images' own stream of shuffles


def class_weights(y: torch.Tensor, num_classes: int, mass: torch.Tensor | None = None) -> torch.Tensor:
    """n / (K * n_c) for present classes (1 for absent ones): each class weighs as much in the loss.

    ``mass``: each image's expected share of the loss (how often it is drawn x its loss weight) when images
    are not drawn uniformly at weight 1; n_c is then the class's total mass."""
    counts = torch.bincount(y, weights=None if mass is None else mass.double(), minlength=num_classes).float()
    present = counts > 0
    w = torch.ones(num_classes)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return w


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Pool indices of batch ``step``: consecutive slices of a stream of seeded shuffles of the pool
    (every image once per pool-epoch), so any step's batch is known without replaying the ones before."""
    out: list[int] = []
    start = step * batch_size
    while len(out) < batch_size:
        epoch, pos = divmod(start, n)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        take = perm[pos : pos + batch_size - len(out)].tolist()
        out += take
        start += len(take)
    return torch.tensor(out, dtype=torch.int64)


def mixed_batch_indices(
    step: int, batch_size: int, real: torch.Tensor, synthetic: torch.Tensor, share: float, seed: int
) -> torch.Tensor:
    """Batch ``step`` with ``round(share x batch_size)`` synthetic images (at least one of each kind): real and
    synthetic pool indices each walk their own stream of seeded shuffles (``batch_indices``)."""
    n_syn = min(batch_size - 1, max(1, round(share * batch_size)))
    r = real[batch_indices(step, batch_size - n_syn, len(real), seed)]
    s = synthetic[batch_indices(step, n_syn, len(synthetic), seed + SYNTHETIC_SEED)]
    return torch.cat([r, s])


def phased_batch_indices(
    step: int, batch_size: int, real: torch.Tensor, synthetic: torch.Tensor, pretrain_steps: int, seed: int
) -> torch.Tensor:
    """Batch ``step`` of pretrain-then-fine-tune: synthetic images only before ``pretrain_steps``, real images
    only from there on; each phase walks its own stream of seeded shuffles from that stream's first epoch."""
    if step < pretrain_steps:
        return synthetic[batch_indices(step, batch_size, len(synthetic), seed + SYNTHETIC_SEED)]
    return real[batch_indices(step - pretrain_steps, batch_size, len(real), seed)]


def draw_mass(synthetic: torch.Tensor, use: SyntheticUse) -> torch.Tensor:
    """Each pool image's expected share of the loss under ``use``: draw probability x loss weight (for rules
    that draw alike all run long; a ``pretrain`` rule balances each phase on its own: ``phase_class_weights``)."""
    if use.pretrain is not None:
        raise ValueError("draw_mass: a pretrain rule has one pool per phase; see phase_class_weights")
    n_syn = int(synthetic.sum())
    n_real = len(synthetic) - n_syn
    if use.share is None:
        p = torch.full((len(synthetic),), 1.0 / len(synthetic), dtype=torch.float64)
    else:
        p = torch.where(synthetic, use.share / max(1, n_syn), (1 - use.share) / max(1, n_real)).double()
    return p * torch.where(synthetic, use.weight, 1.0).double()


def phase_class_weights(
    y: torch.Tensor, synthetic: torch.Tensor, num_classes: int, use: SyntheticUse
) -> tuple[torch.Tensor, torch.Tensor]:
    """(class weights of the synthetic-only phase, of every other step) for ``weighted_ce``; the second also
    scores val. One pair of equal weights unless ``use`` pretrains."""
    if use.pretrain is None:
        w = class_weights(y, num_classes, None if use.is_default else draw_mass(synthetic, use))
        return w, w
    # Each phase draws its own pool uniformly at weight 1, so each balances its own classes: weights over both
    # pools would let one phase's counts skew the other's (a defect class with many synthetic images would be
    # underweighted in the real phase, where only its few real images are drawn).
    return class_weights(y[synthetic], num_classes), class_weights(y[~synthetic], num_classes)
