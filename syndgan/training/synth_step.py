"""One SyNDGAN training step (paper eq. 2): the loss terms, the optimizers, the D-then-network update, and the
batches it is fed (collation and defect-oversampling draws)."""

from __future__ import annotations

import torch
import torch.nn as nn

from syndgan.errors import DataError
from syndgan.losses import AuxClassifierLoss, create_adversarial_losses
from syndgan.models.synthesis_network import SynthesisNetwork
from syndgan.training import distributed
from syndgan.training.common import autocast
from syndgan.training.settings import SynthSettings


class SynthLosses(nn.Module):
    """Every term of eq. 2, returned separately (tests check each is finite and has gradients)."""

    def __init__(self, s: SynthSettings, perceptual: nn.Module | None = None):
        super().__init__()
        self.s = s
        self.d_loss, self.g_loss = create_adversarial_losses(s.loss)
        self.aux = AuxClassifierLoss()
        if perceptual is None and s.w_perceptual > 0:
            from syndgan.metrics.perceptual import create_perceptual

            perceptual = create_perceptual(s.perceptual)
        self.perceptual = perceptual
        self.perceptual_name = perceptual.name if perceptual is not None else "none"

    def generator_terms(
        self, network: SynthesisNetwork, D: nn.Module, real: torch.Tensor, labelmap: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(fake, terms): reconstruction and each weighted-to-be loss term (unweighted values)."""
        fake, ws = network(real, labelmap, noise_mode="random", return_ws=True)
        terms = {"l1": (fake - real).abs().mean()}
        if self.s.w_l1_region > 0:
            terms["l1_region"] = region_l1(fake, real, network.painted_region(labelmap))
        else:
            terms["l1_region"] = fake.new_zeros(())
        logits, cls = D(fake, return_classes=True)
        terms["adv"] = self.g_loss(logits)
        terms["aux"] = self.aux(cls, labels) if cls is not None else fake.new_zeros(())
        use_perceptual = self.perceptual is not None and self.s.w_perceptual > 0
        terms["perceptual"] = self.perceptual(fake, real).mean() if use_perceptual else fake.new_zeros(())
        if self.s.w_inversion > 0:
            ws_fake, _ = network.encode(fake, labelmap)
            terms["inversion"] = (ws_fake - ws.detach()).pow(2).mean()
        else:
            terms["inversion"] = fake.new_zeros(())
        return fake, terms

    def generator_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.s
        return (
            s.w_l1 * terms["l1"]
            + s.w_l1_region * terms["l1_region"]
            + s.w_adv * terms["adv"]
            + s.w_perceptual * terms["perceptual"]
            + s.w_inversion * terms["inversion"]
            + (s.aux_weight * terms["aux"] if s.aux_classifier else 0.0)
        )

    def discriminator_loss(
        self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits_real, cls_real = D(real, return_classes=True)
        logits_fake = D(fake.detach())
        loss = self.d_loss(logits_real, logits_fake)
        if cls_real is not None and self.s.aux_classifier:
            loss = loss + self.s.aux_weight * self.aux(cls_real, labels)
        return loss, logits_real, logits_fake


def region_l1(fake: torch.Tensor, real: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean |fake - real| over the pixels (and channels) of ``region`` (B, 1, H, W), pooled over the batch;
    zero when no image has a region."""
    weight = region.to(fake.dtype).expand_as(fake)
    return ((fake - real).abs() * weight).sum() / weight.sum().clamp_min(1.0)


def make_optimizers(
    network: SynthesisNetwork, D: nn.Module, s: SynthSettings
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    enc = [p for n, p in network.named_parameters() if not n.startswith("decoder.") and p.requires_grad]
    dec = [p for p in network.decoder.parameters() if p.requires_grad]
    groups = [{"params": enc, "lr": s.lr_g}]
    if dec:
        groups.append({"params": dec, "lr": s.lr_g * s.decoder_lr_mult})
    opt_g = torch.optim.Adam(groups, lr=s.lr_g, betas=tuple(s.betas))
    opt_d = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=s.lr_d, betas=tuple(s.betas))
    return opt_g, opt_d


def set_train_mode(network: SynthesisNetwork, D: nn.Module, s: SynthSettings) -> None:
    network.train()
    D.train()
    if s.freeze_decoder:  # a frozen decoder keeps its pretrained BatchNorm statistics
        network.decoder.eval()


def train_step(
    network: SynthesisNetwork,
    D: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    losses: SynthLosses,
    real: torch.Tensor,
    labelmap: torch.Tensor,
    labels: torch.Tensor,
    device: torch.device,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One D step then one synthesis network step; returns the logged values."""
    s = losses.s
    with autocast(device, dtype):
        fake, terms = losses.generator_terms(network, D, real, labelmap, labels)
        loss_g = losses.generator_total(terms)
    opt_g.zero_grad(set_to_none=True)
    D.requires_grad_(False)
    loss_g.backward()
    params = [p for group in opt_g.param_groups for p in group["params"]]
    distributed.average_gradients(params)  # no-op in a single process
    finite = bool(torch.isfinite(loss_g.detach()))
    if distributed.current().active:  # every rank must take (or skip) the same step
        finite = distributed.mean_over_ranks({"finite": float(finite)})["finite"] == 1.0
    # A bounded step: the encoder's latent head can otherwise blow up the inversion term in one step.
    grad_norm = torch.nn.utils.clip_grad_norm_(params, s.grad_clip) if s.grad_clip > 0 else None
    if finite and (grad_norm is None or torch.isfinite(grad_norm)):
        opt_g.step()
    for n, p in D.named_parameters():  # trainable heads only: the feature network and projections stay frozen
        p.requires_grad_(not n.startswith(("feature_network.", "projection.")))

    loss_d = torch.zeros(())
    if s.w_adv > 0 or s.aux_classifier:
        with autocast(device, dtype):
            loss_d, _, _ = losses.discriminator_loss(D, real, fake, labels)
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        distributed.average_gradients(D.parameters())
        opt_d.step()
    out = {k: float(v.detach()) for k, v in terms.items()}
    out.update(loss_g=float(loss_g.detach()), loss_d=float(loss_d.detach()))
    return out


def collate(dataset, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in idx]
    return (
        torch.stack([it["image"] for it in items]),
        torch.stack([torch.as_tensor(it["labelmap"]).long() for it in items]),
        torch.tensor([int(it["label"]) for it in items]),
    )


def sample_batch(labels: list[int], batch_size: int, defect_fraction: float) -> list[int]:
    """Indices of one batch from the global RNG: ``round(defect_fraction * B)`` defect images when any."""
    defects = [i for i, lab in enumerate(labels) if lab > 0]
    normals = [i for i, lab in enumerate(labels) if lab == 0]
    n_def = round(defect_fraction * batch_size) if defects and normals else (batch_size if defects else 0)
    pick = [defects[int(j)] for j in torch.randint(len(defects), (n_def,))] if n_def else []
    pick += [normals[int(j)] for j in torch.randint(len(normals), (batch_size - n_def,))] if normals else []
    return pick


def check_dataset(dataset, resolution: int, channels: int, where: str = "dataset") -> list[int]:
    if len(dataset) == 0:
        raise DataError(getattr(dataset, "source", where), "no training images")
    it = dataset[0]
    if "labelmap" not in it:
        raise DataError(getattr(dataset, "source", where), "items need a 'labelmap' (use with_maps=True)")
    want = (channels, resolution, resolution)
    if tuple(it["image"].shape) != want:
        raise DataError(
            getattr(dataset, "source", where),
            f"images are {tuple(it['image'].shape)}, the pretrained decoder needs {want}",
        )
    labels = getattr(dataset, "labels", None)
    return list(labels) if labels is not None else [int(dataset[i]["label"]) for i in range(len(dataset))]
