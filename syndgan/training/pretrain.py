"""Unconditional ProjectedGAN pretraining of the generator that later becomes SyNDGAN's decoder.

``train_pretrain(settings, dataset, out_dir)`` trains G against a projected multi-scale discriminator on
every training image (normal and defect) and writes, under ``out_dir``:

- ``generator.pt``: ``{"generator": spec, "G_ema": state, "settings": ..., "step": ...}`` for
  downstream stages (``syndgan.models.generators.load_generator``).
- ``discriminator.pt``: ``{"format", "spec": ProjectedDiscriminator kwargs, "D": trainable state, "step"}``
  (``syndgan.models.snapshots.load_discriminator``): what train_synth and the studio's scorer start from.
- ``samples/step_XXXXXXX.png``: G_ema grids on fixed latents.
- ``losses.csv`` (step, loss_d, loss_g, logits_real, logits_fake, images_per_s) and ``fid.csv``
  (step, fid_effnet): DVC-plots tables. Returns the summary dict (also ``summary.json``).

With ``resume_path``, the resumable state (G, G_ema, D's trainable parts, both optimizers, step, RNG states,
settings, code and data digests) is written there atomically every ``checkpoint_every`` steps and at the end, and
a rerun with the same settings, code and data continues from it. The caller chooses the place (the stage:
``.syndgan/resume/``, outside its DVC outputs) and deletes the file once the outputs are written.

``dataset[i]`` must return ``{"image": float tensor (C, R, R) in [-1, 1], "label": int}``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_write_json
from syndgan.losses import AuxClassifierLoss, create_adversarial_losses
from syndgan.models.discriminator import ProjectedDiscriminator
from syndgan.models.generators import create_generator, generator_spec
from syndgan.models.snapshots import DISCRIMINATOR_FORMAT, build_discriminator
from syndgan.sources import source_digest
from syndgan.training import distributed
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    autocast,
    derive_seed,
    save_checkpoint,
    save_image_grid,
    seed_everything,
    to_plain,
)
from syndgan.training.loop import Plan, Trainable, TrainerState, run_steps, setup
from syndgan.training.settings import PretrainSettings

log = logging.getLogger(__name__)

LOSS_COLUMNS = ["step", "loss_d", "loss_g", "logits_real", "logits_fake", "images_per_s"]
GENERATOR = "generator.pt"
DISCRIMINATOR = "discriminator.pt"


def discriminator_spec(s: PretrainSettings) -> dict[str, Any]:
    """The kwargs of pretraining's projected discriminator, as ``discriminator.pt`` stores them."""
    return dict(
        img_resolution=s.resolution,
        img_channels=s.channels,
        resize=s.d_resize,
        diffaug=s.diffaug,
        proj_channels=s.d_proj_channels,
        scales=list(s.d_scales),
        channel_base=s.d_channel_base,
        channel_max=s.d_channel_max,
        n_classes=s.n_classes if s.aux_weight > 0 else 0,
        proj_seed=derive_seed(s.seed, "projection") % 2**31,
    )


def build_networks(s: PretrainSettings) -> tuple[torch.nn.Module, ProjectedDiscriminator]:
    G = create_generator(s.generator, **s.generator_kwargs())
    return G, build_discriminator(discriminator_spec(s), s.feature_weights)


class FidEffnet:
    """FID on EfficientNet-Lite0 pooled features (1280-d): real features computed once, fakes per call.

    With ~128 samples per side the value is strongly biased upwards (1280-d covariances): a trend signal
    within one run, not a number to compare with published FIDs.
    """

    def __init__(
        self, reals: torch.Tensor, device: torch.device, weights_path=None, resize: int = 224, batch: int = 32
    ):
        from torchmetrics.image.fid import FrechetInceptionDistance

        from syndgan.models.features import PooledFeatures

        self.device, self.batch = device, batch
        extractor = PooledFeatures(pretrained=True, weights_path=weights_path, resize=resize)
        # sync_on_compute=False: only rank 0 evaluates under torchrun; a cross-rank sync would wait forever
        self.metric = FrechetInceptionDistance(feature=extractor, reset_real_features=False, sync_on_compute=False).to(
            device
        )
        with torch.no_grad():
            for i in range(0, reals.shape[0], batch):
                self.metric.update(self._unit(reals[i : i + batch]), real=True)

    def _unit(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.to(self.device).float().clamp(-1, 1) + 1) / 2).contiguous()

    @torch.no_grad()
    def __call__(self, G: torch.nn.Module, z: torch.Tensor) -> float:
        self.metric.reset()
        for i in range(0, z.shape[0], self.batch):
            self.metric.update(self._unit(G(z[i : i + self.batch].to(self.device), noise_mode="const")), real=False)
        return float(self.metric.compute())


def train_step(
    G: torch.nn.Module,
    D: ProjectedDiscriminator,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    labels: torch.Tensor,
    z: torch.Tensor,
    losses: tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module],
    aux_weight: float = 0.0,
    device: torch.device = torch.device("cpu"),
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """One D update then one G update on the same fakes, sharing their frozen features.

    The feature network and projections are fixed, so the fakes' projected features are computed once
    (with the graph back to G) and used detached for the D update, then through the updated heads for G.
    """
    loss_d_fn, loss_g_fn, aux_fn = losses
    with autocast(device, dtype):
        fake = G(z, update_emas=True)
        feats_fake = D.features(fake)
        logits_real, cls_real = D.logits(D.features(real), return_classes=True)
        logits_fake = D.logits([f.detach() for f in feats_fake])
        loss_d = loss_d_fn(logits_real, logits_fake)
        if aux_weight > 0:
            loss_d = loss_d + aux_weight * aux_fn(cls_real, labels)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    distributed.average_gradients(D.parameters())  # no-op in a single process
    opt_d.step()
    with autocast(device, dtype):
        loss_g = loss_g_fn(D.logits(feats_fake))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    distributed.average_gradients(G.parameters())
    opt_g.step()
    return {
        "loss_d": loss_d.item(),
        "loss_g": loss_g.item(),
        "logits_real": logits_real.float().mean().item(),
        "logits_fake": logits_fake.float().mean().item(),
    }


def make_optimizers(G, D, s: PretrainSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    opt_g = torch.optim.Adam(G.parameters(), lr=s.lr_g, betas=tuple(s.betas))
    opt_d = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=s.lr_d, betas=tuple(s.betas))
    return opt_g, opt_d


def _batch(dataset, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[int(i)] for i in idx]
    return torch.stack([it["image"] for it in items]), torch.tensor([int(it["label"]) for it in items])


def _resolve(dataset, s: PretrainSettings) -> PretrainSettings:
    """``s`` with resolution and channels taken from the images where unset; checks the images fit."""
    if len(dataset) == 0:
        raise DataError(getattr(dataset, "source", "dataset"), "no training images")
    channels, height, width = dataset[0]["image"].shape
    s = replace(s, resolution=s.resolution or int(width), channels=s.channels or int(channels))
    want = (s.channels, s.resolution, s.resolution)
    if (channels, height, width) != want:
        raise DataError(
            getattr(dataset, "source", "dataset"), f"images are {(channels, height, width)}, settings need {want}"
        )
    if s.aux_weight > 0 and s.n_classes < 2:
        raise ConfigError("pretrain settings: aux_weight: needs n_classes >= 2 (the classes incl. normal)")
    return s


def train_pretrain(
    settings: PretrainSettings,
    dataset,
    out_dir: str | Path,
    *,
    log_dir: str | Path | None = None,
    max_steps: int | None = None,
    resume_path: str | Path | None = None,
    data_digest: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) and return the summary.

    ``log_dir``: where ``losses.csv`` and ``fid.csv`` go (default ``out_dir``). ``max_steps`` stops after
    that step with a checkpoint written, as a kill would (used by tests). ``resume_path``: the resumable state
    (None: none is kept); ``data_digest``: what identifies the training data, so that a state trained on other
    data is not continued.
    """
    s = _resolve(dataset, settings)
    out = Path(out_dir)
    plan = Plan.of(s)
    dist, device, dtype = setup(plan, "pretrain")
    local_batch = dist.local_batch(s.batch_size)

    G, D = build_networks(s)
    G, D = G.to(device).train(), D.to(device).train()
    ema = ModelEMA(G, s.ema, s.ema_rampup)
    opt_g, opt_d = make_optimizers(G, D, s)
    losses = (*create_adversarial_losses(s.loss), AuxClassifierLoss())

    parts = {"G": G, "G_ema": ema, "D": Trainable(D), "opt_g": opt_g, "opt_d": opt_d}
    identity = {"code": (source_digest(__name__), "model/training code")}  # every library file this imports
    if data_digest is not None:
        identity["data"] = (data_digest, "training data")
    state = TrainerState(None if resume_path is None else Path(resume_path), s, RESUME_NEUTRAL, identity, parts)
    start = state.resume(device, {"fid_start": None, "fid_end": None, "train_seconds": 0.0, "train_images": 0}, s.steps)
    history = state.history
    distributed.broadcast_module(G, D, ema.module)  # identical start on every rank
    G_ema = ema.module.to(device)

    # Fixed latents for samples and FID, independent of the training RNG stream.
    gen = torch.Generator().manual_seed(derive_seed(s.seed, "eval") % 2**63)
    z_grid = torch.randn(min(64, max(16, s.batch_size)), s.z_dim, generator=gen)
    fid = None
    if s.fid_samples >= 2 and len(dataset) < 2:
        log.warning("fid_effnet off: it needs at least 2 training images, the dataset has %d", len(dataset))
    if s.fid_samples >= 2 and len(dataset) >= 2 and dist.main:
        n = min(s.fid_samples, len(dataset))
        idx = torch.randperm(len(dataset), generator=gen)[:n]
        seed_everything(derive_seed(s.seed, "fid-reals"))  # patch datasets draw windows from global RNG
        reals, _ = _batch(dataset, idx)
        z_fid = torch.randn(s.fid_samples, s.z_dim, generator=gen)
        fid = FidEffnet(reals, device, s.feature_weights, s.fid_resize)

    log_dir = Path(log_dir) if log_dir is not None else out
    loss_log = CsvLog(log_dir / "losses.csv", LOSS_COLUMNS, state.logs.get("losses"), write=dist.main)
    fid_log = CsvLog(log_dir / "fid.csv", ["step", "fid_effnet"], state.logs.get("fid"), write=dist.main)

    def evaluate(step: int) -> float | None:
        if fid is None:
            return None
        value = fid(G_ema, z_fid)
        fid_log.append({"step": step, "fid_effnet": value})
        log.info("step %d: fid_effnet %.2f", step, value)
        return value

    class Step:
        """Pretraining's step: a D and a G update on uniformly drawn images and fresh latents."""

        net = G

        def draw(self, step: int) -> torch.Tensor:
            return torch.randint(len(dataset), (s.batch_size,))

        def step(self, step: int, idx: torch.Tensor) -> dict[str, float]:
            real, labels = _batch(dataset, idx)
            real, labels = real.to(device), labels.to(device)
            z = torch.randn(local_batch, s.z_dim, device=device)
            return train_step(G, D, opt_g, opt_d, real, labels, z, losses, s.aux_weight, device, dtype)

        def after_step(self, done: int) -> bool:
            if dist.main and s.sample_every and (done % s.sample_every == 0 or done == s.steps):
                with torch.no_grad():
                    grid = G_ema(z_grid.to(device), noise_mode="const")
                save_image_grid(grid, out / "samples" / f"step_{done:07d}.png")
            if done == s.steps or (s.fid_every and done % s.fid_every == 0):
                value = evaluate(done)
                if done == s.steps:
                    history["fid_end"] = value
            return False

        def postfix(self, row: dict[str, float]) -> dict[str, str]:
            return {"d": f"{row['loss_d']:.3f}", "g": f"{row['loss_g']:.3f}"}

    def checkpoint(step: int) -> None:
        if dist.main:
            state.save(step, {"losses": loss_log.rows, "fid": fid_log.rows})

    if start == 0 and history["fid_start"] is None:
        history["fid_start"] = evaluate(0)
    end = s.steps if max_steps is None else min(s.steps, max_steps)
    run_steps(Step(), plan, state, checkpoint, start=start, end=end, name="pretrain", ema=ema, loss_log=loss_log)

    if end < s.steps:  # stopped early on purpose: the checkpoint is written, nothing final yet
        return {"step": end, "finished": False}
    if dist.active:
        log.info("rank %d: final G weights %s", dist.rank, distributed.weights_digest(G))

    summary = {
        "finished": True,
        "steps": s.steps,
        "images": s.steps * s.batch_size,
        "fid_effnet_start": finite_or_none(history["fid_start"]),
        "fid_effnet": finite_or_none(history["fid_end"]),
        "fid_samples": s.fid_samples,
        "images_per_s": history["train_images"] / max(history["train_seconds"], 1e-9),
        "train_seconds": history["train_seconds"],
        "device": str(device),
        "generator": s.generator,
        "resolution": s.resolution,
        "channels": s.channels,
    }
    if not dist.main:
        return summary
    final_sample = out / "samples" / f"step_{s.steps:07d}.png"
    if s.sample_every and not final_sample.exists():  # resumed at the last step: keep the final grid
        with torch.no_grad():
            save_image_grid(G_ema(z_grid.to(device), noise_mode="const"), final_sample)
    spec = generator_spec(s.generator, **s.generator_kwargs())
    save_checkpoint(
        out / GENERATOR,
        {"generator": spec, "G_ema": ema.state_dict(), "settings": to_plain(s), "step": s.steps, "summary": summary},
    )
    save_checkpoint(
        out / DISCRIMINATOR,
        {
            "format": DISCRIMINATOR_FORMAT,
            "spec": discriminator_spec(s),
            "D": {k: v.cpu() for k, v in D.trainable_state_dict().items()},
            "step": s.steps,
        },
    )
    loss_log.publish()  # only now: a killed run leaves the previous curves as they were
    fid_log.publish()
    atomic_write_json(out / "summary.json", summary)
    return summary


# Settings that change bookkeeping, not the trained weights: a checkpoint stays resumable across them (here and in
# the per-class fine-tuning, syndgan.generation.finetune, which runs this module's step).
RESUME_NEUTRAL = frozenset(
    {
        "steps",
        "checkpoint_every",
        "sample_every",
        "fid_every",
        "fid_samples",
        "fid_resize",
        "log_every",
        "progress",
        "device",
        "amp",
    }
)


def finite_or_none(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else x
