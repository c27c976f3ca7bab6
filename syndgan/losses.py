"""Loss classes. Adversarial losses take discriminator logits (any shape, averaged over all elements).

``HingeDLoss``/``HingeGLoss`` are ProjectedGAN's losses; ``LogisticDLoss``/``NonSaturatingGLoss`` are the
log-likelihood form written in the SyNDGAN paper (Eq. 1, 4). ``ADV_LOSSES`` maps a name to its (D, G) pair.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class HingeDLoss(nn.Module):
    """mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))."""

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.relu(1.0 - real_logits.float()).mean() + F.relu(1.0 + fake_logits.float()).mean()


class HingeGLoss(nn.Module):
    """-mean(D(fake))."""

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return -fake_logits.float().mean()


class LogisticDLoss(nn.Module):
    """-log sigmoid(D(real)) - log(1 - sigmoid(D(fake))), computed stably with softplus."""

    def forward(self, real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-real_logits.float()).mean() + F.softplus(fake_logits.float()).mean()


class NonSaturatingGLoss(nn.Module):
    """-log sigmoid(D(fake))."""

    def forward(self, fake_logits: torch.Tensor) -> torch.Tensor:
        return F.softplus(-fake_logits.float()).mean()


class AuxClassifierLoss(nn.Module):
    """Cross-entropy of the discriminator's auxiliary class logits (B, K) against integer labels (B,)."""

    def forward(self, class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(class_logits.float(), labels.long())


ADV_LOSSES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "hinge": (HingeDLoss, HingeGLoss),
    "logistic": (LogisticDLoss, NonSaturatingGLoss),
}


def create_adversarial_losses(name: str) -> tuple[nn.Module, nn.Module]:
    if name not in ADV_LOSSES:
        raise ValueError(f"unknown adversarial loss '{name}' (known: {', '.join(ADV_LOSSES)})")
    d_cls, g_cls = ADV_LOSSES[name]
    return d_cls(), g_cls()
