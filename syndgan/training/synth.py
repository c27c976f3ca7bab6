"""SyNDGAN training (paper eqs. 2-6): the U network (SFT encoder + pretrained decoder) against the pretrained
projected discriminator.

    L_U = w_l1 |U(x, m) - x|_1 + w_adv L_adv(D(U(x, m))) + w_perceptual P(U(x, m), x)
          + w_inversion |Enc(x, m) - Enc(U(x, m), m)|_2^2

``x`` is a real training image (defect or normal), ``m`` its label map (empty for normal images); U erases the
defect region and paints it back from the class map. ``P`` is LPIPS-VGG when torchvision's VGG16 file is in
the torch cache, else the EfficientNet-Lite0 perceptual distance (``syndgan.metrics.perceptual``); its name is
logged and stored. The in-domain inversion term (In-Domain GAN Inversion) compares latent codes, the real
input's code being the (detached) target.

``train_synth(settings, dataset, out_dir, generator_checkpoint=..., ...)`` writes under ``out_dir``:

- ``checkpoints/last.pt``: U, EMA of U, D's trainable parts, optimizers, step, RNG, settings; written
  atomically every ``checkpoint_every`` steps; a rerun with the same settings and decoder resumes from it.
- ``synthesizer.pt``: what ``syndgan.synthesis.Synthesizer`` loads (EMA weights, network spec, classes,
  data mode, blending defaults).
- ``samples/step_XXXXXXX.png``: rows of real | masked input | reconstruction on fixed images.
- ``losses.csv`` in ``log_dir``. Returns the summary (also ``summary.json``).

Dataset items: ``{"image": (C, R, R) in [-1, 1], "labelmap": (R, R) int, "label": int}``.
Ablations (paper Table 5) are settings: ``pretrained_decoder=False`` / ``pretrained_discriminator=False``,
``w_inversion=0``, ``d_scales=[3]`` (single scale), ``aux_classifier=True``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_write_json
from syndgan.losses import AuxClassifierLoss, create_adversarial_losses
from syndgan.models.discriminator import ProjectedDiscriminator
from syndgan.models.generators import create_generator, generator_spec
from syndgan.models.syndgan import LATENTS, SEG_ENCODINGS, SyNDGAN
from syndgan.training import distributed
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    amp_dtype,
    autocast,
    capture_rng_state,
    configure_determinism,
    cpu_state,
    derive_seed,
    load_checkpoint,
    load_resumable,
    optimizer_state_to,
    restore_rng_state,
    save_checkpoint,
    save_image_grid,
    seed_everything,
    seed_step,
    select_device,
    source_digest,
    step_bar,
    to_plain,
)

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoints/last.pt"
SYNTHESIZER = "synthesizer.pt"
SYNTHESIZER_FORMAT = "syndgan.synthesizer/1"
LOSS_COLUMNS = ["step", "loss_d", "loss_g", "l1", "adv", "perceptual", "inversion", "aux", "images_per_s"]


@dataclass
class SynthSettings:
    # U network (encoder sizes; the decoder is the pretrained generator)
    seg_encoding: str = "both"  # onehot | color | both
    latent: str = "w+"  # w | w+
    n_blocks: int = 7
    enc_channel_base: int = 2048
    enc_channel_max: int = 128
    sft_hidden: int = 16
    skip_min_res: int = 8
    erase_dilate: int = 1  # px at working resolution blanked around the mask
    # initialization / ablations
    pretrained_decoder: bool = True
    pretrained_discriminator: bool = True
    freeze_decoder: bool = False
    decoder_lr_mult: float = 0.2  # decoder lr = 2e-4 (paper IV.A)
    d_scales: list[int] | None = None  # None: the pretrained discriminator's scales; [3]: single-scale
    aux_classifier: bool = False
    aux_weight: float = 1.0
    # losses (eq. 2)
    w_l1: float = 1.0
    w_adv: float = 0.05
    w_perceptual: float = 1.0
    w_inversion: float = 1.0
    perceptual: str = "auto"  # auto | vgg | effnet
    loss: str = "hinge"
    # optimisation
    batch_size: int = 8
    steps: int = 200
    lr_g: float = 1e-3  # encoder and skips
    lr_d: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    defect_fraction: float = 0.5  # share of defect images in a batch (defects are rare)
    grad_clip: float = 1.0  # max gradient norm of U's step (0: off)
    ema_halflife_images: float = 500.0
    ema_rampup: float | None = 0.05
    seed: int = 0
    # bookkeeping
    checkpoint_every: int = 100
    sample_every: int = 100
    log_every: int = 10
    device: str = "auto"
    amp: bool = True
    feature_weights: str | None = None  # EfficientNet-Lite0 file for D; None: the packaged one
    progress: bool = True

    def validate(self) -> None:
        def bad(key, msg):
            raise ConfigError(f"train_synth settings: {key}: {msg}")

        if self.seg_encoding not in SEG_ENCODINGS:
            bad("seg_encoding", f"must be one of {', '.join(SEG_ENCODINGS)}, got {self.seg_encoding!r}")
        if self.latent not in LATENTS:
            bad("latent", f"must be one of {', '.join(LATENTS)}, got {self.latent!r}")
        if self.n_blocks < 1:
            bad("n_blocks", "must be >= 1")
        if self.batch_size < 2:
            bad("batch_size", "must be >= 2 (BatchNorm)")
        if self.steps < 1:
            bad("steps", "must be >= 1")
        if self.freeze_decoder and not self.pretrained_decoder:
            bad("freeze_decoder", "a randomly initialised decoder must be trained")
        if self.d_scales is not None and (not self.d_scales or any(s not in (0, 1, 2, 3) for s in self.d_scales)):
            bad("d_scales", f"must be null or a non-empty subset of [0, 1, 2, 3], got {self.d_scales}")
        for k in ("w_l1", "w_adv", "w_perceptual", "w_inversion", "aux_weight", "decoder_lr_mult"):
            if getattr(self, k) < 0:
                bad(k, "must be >= 0")
        if not 0 <= self.defect_fraction <= 1:
            bad("defect_fraction", "must be in [0, 1]")
        if self.perceptual not in ("auto", "vgg", "effnet"):
            bad("perceptual", f"must be auto, vgg or effnet, got {self.perceptual!r}")
        for k in ("checkpoint_every", "sample_every", "log_every", "erase_dilate", "grad_clip"):
            if getattr(self, k) < 0:
                bad(k, "must be >= 0")

    def network_kwargs(self) -> dict[str, Any]:
        return dict(
            seg_encoding=self.seg_encoding,
            latent=self.latent,
            n_blocks=self.n_blocks,
            channel_base=self.enc_channel_base,
            channel_max=self.enc_channel_max,
            sft_hidden=self.sft_hidden,
            skip_min_res=self.skip_min_res,
            erase_dilate=self.erase_dilate,
        )


# --------------------------------------------------------------------------- building blocks


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_pretrained(generator_checkpoint: str | Path) -> dict[str, Any]:
    """The pretraining ``generator.pt``: generator spec, EMA weights and the pretraining settings."""
    state = load_checkpoint(generator_checkpoint)
    for key in ("generator", "G_ema"):
        if key not in state:
            raise DataError(generator_checkpoint, f"not a generator checkpoint (missing '{key}')")
    return state


def build_decoder(pre: dict[str, Any], pretrained: bool, seed: int) -> nn.Module:
    spec = dict(pre["generator"])
    name = spec.pop("name")
    if pretrained:
        G = create_generator(name, **spec)
        G.load_state_dict(pre["G_ema"])
        return G
    torch.manual_seed(derive_seed(seed, "random-decoder") % 2**63)
    return create_generator(name, **spec)


def build_discriminator(
    pre_settings: dict[str, Any],
    s: SynthSettings,
    resolution: int,
    channels: int,
    n_classes: int,
    discriminator_checkpoint: str | Path | None,
) -> ProjectedDiscriminator:
    """The projected D of pretraining (same architecture and fixed projections), optionally its weights.

    Single-scale (``d_scales``) keeps only those heads; the auxiliary classifier gets a fresh head.
    """
    p = pre_settings
    scales = tuple(s.d_scales) if s.d_scales is not None else tuple(p.get("d_scales", (0, 1, 2, 3)))
    pre_seed = int(p.get("seed", 0))
    D = ProjectedDiscriminator(
        resolution,
        channels,
        pretrained=True,
        weights_path=s.feature_weights,
        resize=p.get("d_resize"),
        diffaug=p.get("diffaug", "color,translation,cutout"),
        proj_channels=int(p.get("d_proj_channels", 64)),
        scales=scales,
        channel_base=int(p.get("d_channel_base", 4096)),
        channel_max=int(p.get("d_channel_max", 256)),
        n_classes=n_classes if s.aux_classifier else 0,
        proj_seed=derive_seed(pre_seed, "projection") % 2**31,  # pretraining's projections
    )
    if not s.pretrained_discriminator or discriminator_checkpoint is None:
        return D
    ck = load_checkpoint(discriminator_checkpoint)
    if "D" not in ck:
        raise DataError(discriminator_checkpoint, "no discriminator state 'D' in this checkpoint")
    own = D.trainable_state_dict()
    src = {k: v for k, v in ck["D"].items() if k in own and ".classifier." not in k}
    missing = sorted(k for k in set(own) - set(src) if ".classifier." not in k)
    if missing:
        raise DataError(discriminator_checkpoint, f"discriminator does not match pretraining (missing {missing[0]})")
    for k, v in src.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise DataError(discriminator_checkpoint, f"discriminator tensor {k} has shape {tuple(v.shape)}")
    D.load_state_dict(src, strict=False)
    return D


def build_network(G: nn.Module, classes: list[dict], s: SynthSettings) -> SyNDGAN:
    return SyNDGAN(G, len(classes), [list(c["color"]) for c in classes], **s.network_kwargs())


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
        self, U: SyNDGAN, D: nn.Module, real: torch.Tensor, labelmap: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(fake, terms): reconstruction and each weighted-to-be loss term (unweighted values)."""
        fake, ws = U(real, labelmap, noise_mode="random", return_ws=True)
        terms = {"l1": (fake - real).abs().mean()}
        logits, cls = D(fake, return_classes=True)
        terms["adv"] = self.g_loss(logits)
        terms["aux"] = self.aux(cls, labels) if cls is not None else fake.new_zeros(())
        use_perceptual = self.perceptual is not None and self.s.w_perceptual > 0
        terms["perceptual"] = self.perceptual(fake, real).mean() if use_perceptual else fake.new_zeros(())
        if self.s.w_inversion > 0:
            ws_fake, _ = U.encode(fake, labelmap)
            terms["inversion"] = (ws_fake - ws.detach()).pow(2).mean()
        else:
            terms["inversion"] = fake.new_zeros(())
        return fake, terms

    def generator_total(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        s = self.s
        return (
            s.w_l1 * terms["l1"]
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


def make_optimizers(U: SyNDGAN, D: nn.Module, s: SynthSettings) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    enc = [p for n, p in U.named_parameters() if not n.startswith("decoder.") and p.requires_grad]
    dec = [p for p in U.decoder.parameters() if p.requires_grad]
    groups = [{"params": enc, "lr": s.lr_g}]
    if dec:
        groups.append({"params": dec, "lr": s.lr_g * s.decoder_lr_mult})
    opt_g = torch.optim.Adam(groups, lr=s.lr_g, betas=tuple(s.betas))
    opt_d = torch.optim.Adam([p for p in D.parameters() if p.requires_grad], lr=s.lr_d, betas=tuple(s.betas))
    return opt_g, opt_d


def set_train_mode(U: SyNDGAN, D: nn.Module, s: SynthSettings) -> None:
    U.train()
    D.train()
    if s.freeze_decoder:  # a frozen decoder keeps its pretrained BatchNorm statistics
        U.decoder.eval()


def train_step(
    U: SyNDGAN,
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
    """One D step then one U step; returns the logged values."""
    s = losses.s
    with autocast(device, dtype):
        fake, terms = losses.generator_terms(U, D, real, labelmap, labels)
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


# --------------------------------------------------------------------------- data


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


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def reconstruct(
    U: SyNDGAN, images: torch.Tensor, labelmaps: torch.Tensor, device: torch.device, batch: int = 16
) -> torch.Tensor:
    """U's raw output (no blending), clamped to [-1, 1], on CPU."""
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(device)
        m = labelmaps[i : i + batch].to(device)
        out.append(U(x, m, noise_mode="const").float().clamp(-1, 1).cpu())
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[1:]))


@torch.no_grad()
def evaluate_reconstruction(
    U: SyNDGAN, dataset, device: torch.device, perceptual: nn.Module, batch: int = 16
) -> dict[str, float]:
    """Perceptual distance and L1 between real images and U's raw reconstructions (paper Tables 2 and 5).

    ``recon_<name>_normal`` / ``_defect``: images with their own map (defects erased and repainted);
    ``recon_<name>_defect_nomap``: defect images with an empty map (pure encode-decode, the paper's
    "segmentation map devoid of defect information"). ``<name>`` is the perceptual distance's name.
    """
    from syndgan.metrics.base import to_uint8, uint8_to_unit

    U.eval()
    name = perceptual.name
    n = len(dataset)
    sums: dict[str, list[float]] = {}
    for start in range(0, n, batch):
        images, labelmaps, labels = collate(dataset, list(range(start, min(n, start + batch))))
        variants = [("", labelmaps)]
        if bool((labels > 0).any()):
            variants.append(("_nomap", torch.zeros_like(labelmaps)))
        for suffix, maps in variants:
            fake = reconstruct(U, images, maps, device, batch)
            # Compare 8-bit images, as a saved reconstruction would be compared.
            real_u, fake_u = uint8_to_unit(to_uint8(images)), uint8_to_unit(to_uint8(fake))
            d = perceptual(fake_u.to(device), real_u.to(device)).double().cpu()
            l1 = (fake_u - real_u).abs().flatten(1).mean(1).double()
            for i in range(images.shape[0]):
                kind = "defect" if labels[i] > 0 else "normal"
                if suffix and kind == "normal":
                    continue
                sums.setdefault(f"recon_{name}_{kind}{suffix}", []).append(float(d[i]))
                sums.setdefault(f"recon_l1_{kind}{suffix}", []).append(float(l1[i]))
    out: dict[str, float] = {k: sum(v) / len(v) for k, v in sorted(sums.items())}
    out["recon_images_normal"] = len(sums.get(f"recon_{name}_normal", []))
    out["recon_images_defect"] = len(sums.get(f"recon_{name}_defect", []))
    return out


def masked_inputs(U: SyNDGAN, images: torch.Tensor, labelmaps: torch.Tensor) -> torch.Tensor:
    """What U sees, for display: erased image with the class colours drawn in."""
    with torch.no_grad():
        lm = labelmaps.to(U.palette.device).long()
        x = U.erase(images.to(U.palette.device), lm)
        color = U.palette[lm.clamp(0, U.num_classes)].permute(0, 3, 1, 2) * 2 - 1
        if x.shape[1] == 1:
            color = color.mean(dim=1, keepdim=True)
        m = U.mask(lm)
        return (x * (1 - m) + color * m).cpu()


def save_reconstruction_grid(
    U: SyNDGAN, images: torch.Tensor, labelmaps: torch.Tensor, path: Path, device: torch.device
) -> Path:
    """Rows of (real, masked input, reconstruction): three columns per image."""
    U.eval()
    fake = reconstruct(U, images, labelmaps, device)
    shown = masked_inputs(U, images, labelmaps)
    tiles = torch.stack([images.cpu(), shown, fake], dim=1).flatten(0, 1)
    return save_image_grid(tiles, path, nrow=6 if images.shape[0] > 1 else 3)


# --------------------------------------------------------------------------- training

# The code a checkpoint depends on (``source_digest``): changed code means a fresh run, not a resume.
CODE = (
    "syndgan.models",
    "syndgan.losses",
    "syndgan.metrics.perceptual",
    "syndgan.synthesis",
    "syndgan.training.common",
    "syndgan.training.distributed",
    "syndgan.training.synth",
)

# Settings that change bookkeeping, not the trained weights: a checkpoint stays resumable across them.
RESUME_NEUTRAL = frozenset({"steps", "checkpoint_every", "sample_every", "log_every", "progress", "device", "amp"})


def train_synth(
    settings: SynthSettings,
    dataset,
    out_dir: str | Path,
    *,
    generator_checkpoint: str | Path,
    discriminator_checkpoint: str | Path | None,
    classes: list[dict],
    eval_dataset=None,
    data: dict[str, Any] | None = None,
    log_dir: str | Path | None = None,
    max_steps: int | None = None,
    perceptual: nn.Module | None = None,
) -> dict[str, Any]:
    """Train (or resume) U and return the summary (reconstruction metrics on ``eval_dataset`` when given).

    ``classes``: ``[{"name", "id", "color"}, ...]`` (dataset.json), ids 1..K in order. ``data``: how
    images were prepared (``{"mode": "resize"}`` or ``{"mode": "patch", "patch_size": P}``), stored for
    the synthesizer. ``max_steps`` stops early with a checkpoint written, as a kill would (tests).
    ``perceptual``: an already built ``create_perceptual(...)`` to reuse (else one is built from settings).
    """
    s = settings
    s.validate()
    if [int(c["id"]) for c in classes] != list(range(1, len(classes) + 1)):
        raise ConfigError(f"classes must have ids 1..K in order, got {[c['id'] for c in classes]}")
    out = Path(out_dir)
    dist = distributed.current()  # rank 0 of 1 unless launched by torchrun
    dist.local_batch(s.batch_size, "train_synth.batch_size")  # the global batch must split evenly
    device = distributed.device_for(select_device(s.device))
    configure_determinism(device)
    dtype = amp_dtype(device, s.amp)
    seed_everything(s.seed)

    pre = read_pretrained(generator_checkpoint)
    G = build_decoder(pre, s.pretrained_decoder, s.seed)
    resolution, channels = G.img_resolution, G.img_channels
    labels = check_dataset(dataset, resolution, channels)
    seed_everything(derive_seed(s.seed, "network"))
    U = build_network(G, classes, s)
    U.decoder.requires_grad_(not s.freeze_decoder)
    D = build_discriminator(
        pre.get("settings", {}), s, resolution, channels, len(classes) + 1, discriminator_checkpoint
    )
    U, D = U.to(device), D.to(device)
    set_train_mode(U, D, s)
    ema = ModelEMA(U, s.ema_halflife_images, s.ema_rampup)
    opt_g, opt_d = make_optimizers(U, D, s)
    losses = SynthLosses(s, perceptual).to(device)
    log.info(
        "SyNDGAN: %s decoder (%s, %s), D %s (scales %s%s), perceptual loss %s, %d training images (%d defect)",
        "pretrained" if s.pretrained_decoder else "random",
        pre["generator"]["name"],
        "frozen" if s.freeze_decoder else "fine-tuned",
        "pretrained" if s.pretrained_discriminator and discriminator_checkpoint else "random heads",
        list(D.scales),
        ", aux classifier" if s.aux_classifier else "",
        losses.perceptual_name,
        len(labels),
        sum(1 for x in labels if x > 0),
    )

    init_digest = file_digest(generator_checkpoint)
    code = source_digest(*CODE)
    ckpt_path = out / CHECKPOINT
    start, history = 0, {"train_seconds": 0.0, "train_images": 0}
    identity = {"init_digest": (init_digest, "pretrained decoder file"), "code": (code, "model/training code")}
    ck = load_resumable(ckpt_path, to_plain(s), s.steps, RESUME_NEUTRAL, identity)
    if ck is not None:
        U.load_state_dict(ck["U"])
        ema.load_state_dict(ck["U_ema"])
        D.load_trainable_state_dict(ck["D"])
        opt_g.load_state_dict(ck["opt_g"])
        opt_d.load_state_dict(ck["opt_d"])
        optimizer_state_to(opt_g, device)
        optimizer_state_to(opt_d, device)
        restore_rng_state(ck["rng"])
        start, history = int(ck["step"]), dict(ck["history"])
        log.info("resuming from %s at step %d", ckpt_path, start)
    distributed.broadcast_module(U)  # identical start on every rank
    distributed.broadcast_module(D)
    distributed.broadcast_module(ema.module)
    U_ema = ema.module.to(device)

    # Fixed display images (test images when given): independent of the training RNG stream.
    show_set = eval_dataset if eval_dataset is not None and len(eval_dataset) else dataset
    show_labels = check_dataset(show_set, resolution, channels, "eval dataset")
    show_idx = [i for i, lab in enumerate(show_labels) if lab > 0][:4] + [
        i for i, lab in enumerate(show_labels) if lab == 0
    ][:2]
    seed_everything(derive_seed(s.seed, "show"))  # patch datasets draw windows from the global RNG
    show_x, show_m, _ = collate(show_set, show_idx)

    log_dir = Path(log_dir) if log_dir is not None else out
    loss_log = CsvLog(log_dir / "losses.csv", LOSS_COLUMNS, (ck or {}).get("logs"), write=dist.main)

    def checkpoint(step: int) -> None:
        if not dist.main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "step": step,
                "U": cpu_state(U),
                "U_ema": ema.state_dict(),
                "D": {k: v.cpu() for k, v in D.trainable_state_dict().items()},
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "rng": capture_rng_state(),
                "settings": to_plain(s),
                "init_digest": init_digest,
                "code": code,
                "history": history,
                "logs": loss_log.rows,
            },
        )

    end = s.steps if max_steps is None else min(s.steps, max_steps)
    window_t, window_n = time.perf_counter(), 0
    bar = step_bar(start, end, s.steps, "train_synth", s.progress and dist.main)
    for step in bar:
        t0 = time.perf_counter()
        seed_step(s.seed, step)
        set_train_mode(U, D, s)
        picked = sample_batch(labels, s.batch_size, s.defect_fraction)
        if dist.active:  # every rank drew the same global batch: keep its share, then its own RNG stream
            picked = dist.shard(picked)
            seed_step(distributed.rank_seed(s.seed), step)
        real, labelmap, lab = collate(dataset, picked)
        vals = train_step(
            U, D, opt_g, opt_d, losses, real.to(device), labelmap.to(device), lab.to(device), device, dtype
        )
        ema.update(U, (step + 1) * s.batch_size, s.batch_size)
        history["train_seconds"] += time.perf_counter() - t0
        history["train_images"] += s.batch_size
        window_n += s.batch_size
        done = step + 1
        if s.log_every and (done % s.log_every == 0 or done == s.steps):
            ips = window_n / max(time.perf_counter() - window_t, 1e-9)
            window_t, window_n = time.perf_counter(), 0
            vals = distributed.mean_over_ranks(vals)
            loss_log.append({"step": done, **vals, "images_per_s": ips})
            bar.set_postfix(l1=f"{vals['l1']:.3f}", perc=f"{vals['perceptual']:.3f}", ips=f"{ips:.1f}")
        if dist.main and s.sample_every and (done % s.sample_every == 0 or done == s.steps):
            save_reconstruction_grid(U_ema, show_x, show_m, out / "samples" / f"step_{done:07d}.png", device)
        if (s.checkpoint_every and done % s.checkpoint_every == 0) or done == end:
            checkpoint(done)
        if s.log_every and done % s.log_every == 0:
            window_t = time.perf_counter()
    bar.close()

    if end < s.steps:
        return {"step": end, "finished": False}
    if dist.active:
        log.info("rank %d: final U weights %s", dist.rank, distributed.weights_digest(U))
        if not dist.main:  # rank 0 evaluates and writes
            return {"finished": True, "steps": s.steps, "rank": dist.rank}

    summary: dict[str, Any] = {
        "finished": True,
        "steps": s.steps,
        "images": s.steps * s.batch_size,
        "train_seconds": history["train_seconds"],
        "images_per_s": history["train_images"] / max(history["train_seconds"], 1e-9),
        "device": str(device),
        "perceptual": losses.perceptual_name,
        "decoder": pre["generator"]["name"],
        "pretrained_decoder": s.pretrained_decoder,
        "resolution": resolution,
        "channels": channels,
    }
    if eval_dataset is not None and len(eval_dataset):
        t0 = time.perf_counter()
        perceptual = losses.perceptual
        if perceptual is None:
            from syndgan.metrics.perceptual import create_perceptual

            perceptual = create_perceptual(s.perceptual).to(device)
        summary.update(evaluate_reconstruction(U_ema, eval_dataset, device, perceptual))
        summary["eval_seconds"] = time.perf_counter() - t0
        summary["perceptual"] = perceptual.name
    save_reconstruction_grid(U_ema, show_x, show_m, out / "reconstructions.png", device)
    final_sample = out / "samples" / f"step_{s.steps:07d}.png"
    if not final_sample.exists():  # resumed at the last step (or DVC cleared samples/): keep the final grid
        save_reconstruction_grid(U_ema, show_x, show_m, final_sample, device)
    save_synthesizer(out / SYNTHESIZER, U_ema, pre, s, classes, data or {"mode": "resize"}, summary)
    atomic_write_json(out / "summary.json", summary)
    return summary


def save_synthesizer(
    path: Path,
    U: SyNDGAN,
    pre: dict[str, Any],
    s: SynthSettings,
    classes: list[dict],
    data: dict[str, Any],
    summary: dict[str, Any],
) -> Path:
    spec = dict(pre["generator"])
    return save_checkpoint(
        path,
        {
            "format": SYNTHESIZER_FORMAT,
            "generator": generator_spec(spec.pop("name"), **spec),
            "network": {"num_classes": len(classes), **s.network_kwargs()},
            "state": cpu_state(U),
            "classes": [
                {"name": str(c["name"]), "id": int(c["id"]), "color": [int(v) for v in c["color"]]} for c in classes
            ],
            "data": to_plain(data),
            "settings": to_plain(s),
            "summary": to_plain({k: v for k, v in summary.items() if not isinstance(v, float) or math.isfinite(v)}),
        },
    )


def load_synthesis_network(state: dict[str, Any], where: str | Path = "synthesizer") -> SyNDGAN:
    """Rebuild U (eval mode, no gradients) from a ``synthesizer.pt`` dict."""
    if state.get("format") != SYNTHESIZER_FORMAT:
        raise DataError(where, f"not a SyNDGAN synthesizer checkpoint (format {state.get('format')!r})")
    spec = dict(state["generator"])
    G = create_generator(spec.pop("name"), **spec)
    net = dict(state["network"])
    num_classes = net.pop("num_classes")
    U = SyNDGAN(G, num_classes, [c["color"] for c in state["classes"]], **net)
    try:
        U.load_state_dict(state["state"])
    except RuntimeError as e:
        raise DataError(where, f"weights do not fit the stored network ({str(e).splitlines()[0]})") from None
    return U.eval().requires_grad_(False)
