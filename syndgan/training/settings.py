"""Settings of the two GAN trainings: the schema of the ``pretrain`` and ``train_synth`` sections of params.yaml
(the stages add only their data and output keys) and what the checkpoints store. No torch import.

Each field is declared and checked once, here; a bad value raises ``ConfigError("<field>: <problem>")``, which
the params reader prefixes with the file and section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from syndgan.errors import ConfigError

DIFFAUG_OPS = ("color", "translation", "cutout")
D_SCALES = (0, 1, 2, 3)  # EfficientNet-Lite0 stages the projected discriminator can judge


def _bad(key: str, msg: str):
    raise ConfigError(f"{key}: {msg}")


def check_common(s) -> None:
    """The optimisation and bookkeeping fields both trainings share."""
    if s.batch_size < 2:
        _bad("batch_size", "must be >= 2 (BatchNorm)")
    if s.steps < 1:
        _bad("steps", "must be >= 1")
    for key in ("lr_g", "lr_d", "ema"):
        if getattr(s, key) <= 0:
            _bad(key, "must be > 0")
    if len(s.betas) != 2 or not all(0 <= b < 1 for b in s.betas):
        _bad("betas", f"must be two values in [0, 1), got {s.betas}")
    if s.ema_rampup is not None and s.ema_rampup < 0:
        _bad("ema_rampup", "must be >= 0 or null")
    for key in ("checkpoint_every", "sample_every", "log_every"):
        if getattr(s, key) < 0:
            _bad(key, "must be >= 0")


@dataclass
class PretrainSettings:
    """ProjectedGAN pretraining of the generator SyNDGAN later decodes with (paper III.B-2, III.C-1, IV.A).

    Defaults: the paper's generator with CPU-sized networks, and StyleGAN2's own optimiser (lr_g 2e-3, lr_d 2e-4,
    betas [0, 0.99]) rather than the paper's (IV.A: 2e-4 with Adam (0.9, 0.999)): stylegan2 has an equalized
    learning rate, and at lr_g 2e-4 it was still colour noise after 800 CPU steps.
    """

    # generator
    generator: Literal["stylegan2", "fastgan"] = "stylegan2"
    z_dim: int = 128
    w_dim: int = 128
    resolution: int | None = None  # None: the dataset's (the stage: rasterize.resolution)
    channels: int | None = None  # None: the dataset's
    g_channel_base: int = 1024  # channels at resolution r: min(g_channel_max, g_channel_base // r)
    g_channel_max: int = 128
    # discriminator
    d_resize: int | None = None  # None: feature network at native size; 224: ProjectedGAN's upsampling
    d_scales: list[int] = field(default_factory=lambda: [0, 1, 2, 3])  # [3]: single-scale discriminator
    d_channel_base: int = 2048
    d_channel_max: int = 128
    d_proj_channels: int = 32  # CCM output channels of the first scale (x2 per deeper scale)
    diffaug: str = "color,translation,cutout"
    n_classes: int = 0  # classes incl. normal of the auxiliary head (the stage: the dataset's when aux_weight > 0)
    aux_weight: float = 0.0  # > 0: auxiliary classifier head trained on the real images' labels
    loss: Literal["hinge", "logistic"] = "hinge"
    # optimisation
    batch_size: int = 8
    steps: int = 1200
    lr_g: float = 2e-3  # StyleGAN2's (equalized lr); paper IV.A: 2e-4
    lr_d: float = 2e-4  # paper IV.A: 1e-4
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])  # StyleGAN2's, ProjectedGAN's; paper: [0.9, 0.999]
    ema: float = 2000.0  # G_ema half-life, in images
    ema_rampup: float | None = 0.05
    seed: int = 0
    # bookkeeping
    checkpoint_every: int = 200  # steps
    sample_every: int = 400
    fid_every: int = 400  # 0: fid_effnet only at start and end
    fid_samples: int = 128  # G_ema samples (and real images) per fid_effnet; 0 disables it
    fid_resize: int = 224
    log_every: int = 10
    device: str = "auto"  # auto: CUDA when present (bf16 autocast), else CPU
    amp: bool = True
    feature_weights: str | None = None  # EfficientNet-Lite0 file; None: the packaged one
    progress: bool = True

    def __post_init__(self):
        r = self.resolution
        if r is not None and (r < 8 or r > 1024 or r & (r - 1)):
            _bad("resolution", f"must be a power of 2 in [8, 1024] (or null: the dataset's), got {r}")
        if self.channels not in (None, 1, 3):
            _bad("channels", f"must be 1 or 3 (or null: the dataset's), got {self.channels}")
        for key in ("z_dim", "w_dim", "g_channel_base", "g_channel_max", "d_channel_base", "d_channel_max"):
            if getattr(self, key) <= 0:
                _bad(key, "must be > 0")
        if self.d_proj_channels < 1:
            _bad("d_proj_channels", "must be >= 1")
        if not self.d_scales or any(sc not in D_SCALES for sc in self.d_scales):
            _bad("d_scales", f"must be a non-empty subset of [0, 1, 2, 3], got {self.d_scales}")
        if self.d_resize is not None and self.d_resize < 32:
            _bad("d_resize", f"must be >= 32 (or null), got {self.d_resize}")
        ops = [o.strip() for o in self.diffaug.split(",") if o.strip()]
        if any(o not in DIFFAUG_OPS for o in ops):
            _bad("diffaug", f"comma-separated subset of color, translation, cutout; got {self.diffaug!r}")
        if self.n_classes < 0 or self.aux_weight < 0:
            _bad("n_classes" if self.n_classes < 0 else "aux_weight", "must be >= 0")
        check_common(self)
        if self.fid_every < 0:
            _bad("fid_every", "must be >= 0")
        if self.fid_samples == 1 or self.fid_samples < 0:
            _bad("fid_samples", "must be 0 (off) or >= 2")

    def generator_kwargs(self) -> dict:
        return dict(
            z_dim=self.z_dim,
            w_dim=self.w_dim,
            img_resolution=self.resolution,
            img_channels=self.channels,
            channel_base=self.g_channel_base,
            channel_max=self.g_channel_max,
        )


@dataclass
class SynthSettings:
    """SyNDGAN's synthesis network (paper III.B-3, III.C-2): SFT encoder + pretrained decoder, losses of eq. 2.

    Ablations (paper Table 5) are settings: ``pretrained_decoder=False`` / ``pretrained_discriminator=False``,
    ``w_inversion=0``, ``d_scales=[3]`` (single scale), ``aux_classifier=True``.
    """

    # synthesis network (encoder sizes; the decoder is the pretrained generator)
    seg_encoding: Literal["onehot", "color", "both"] = "both"  # class map fed to the encoder and SFT layers
    latent: Literal["w", "w+"] = "w+"  # encoder output: one W code or per-layer W+ codes
    n_blocks: int = 7  # SFT residual blocks (paper: 7)
    enc_channel_base: int = 2048  # encoder channels at resolution r: min(enc_channel_max, base // r)
    enc_channel_max: int = 128
    sft_hidden: int = 16  # channels of the SFT conv branches
    skip_min_res: int = 8  # encoder features are injected into the decoder at resolutions >= this
    erase_dilate: int = 1  # px (working resolution) blanked around the mask in the input
    # initialization / ablations
    pretrained_decoder: bool = True  # false: random decoder (ablation "w/o Pretrained")
    pretrained_discriminator: bool = True  # false: random discriminator heads
    freeze_decoder: bool = False  # true: only the encoder (and skips) learn
    decoder_lr_mult: float = 0.2  # decoder learning rate = lr_g * this (2e-4: the paper's generator rate)
    d_scales: list[int] | None = None  # null: the pretrained discriminator's scales; [3]: single scale
    aux_classifier: bool = False  # auxiliary-classifier discriminator head (Table 5)
    aux_weight: float = 1.0
    # losses (eq. 2)
    w_l1: float = 1.0  # eq. 3
    # L1 over the painted region only (not in the paper): the whole-image L1 hardly sees a defect of ~1 % of the
    # pixels. Lever 1b of issue 12; screened at 1.0 on Magnetic Tile without a gain, so off (docs/levers.md).
    w_l1_region: float = 0.0
    w_adv: float = 0.05  # eq. 4
    w_perceptual: float = 1.0  # eq. 5 (LPIPS-VGG, or the EfficientNet distance without VGG weights)
    w_inversion: float = 1.0  # eq. 6 (in-domain inversion)
    perceptual: Literal["auto", "vgg", "effnet"] = "auto"  # auto: vgg when its weights are in the torch cache
    loss: Literal["hinge", "logistic"] = "hinge"
    # optimisation
    batch_size: int = 8
    steps: int = 200
    lr_g: float = 1e-3  # encoder + skips: a few hundred CPU steps, not the paper's days (2e-4) on a GPU
    lr_d: float = 1e-4  # paper IV.A
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    defect_fraction: float = 0.5  # share of defect images in each batch (defects are rare)
    grad_clip: float = 1.0  # max gradient norm of the network's step (0: off)
    ema: float = 500.0  # half-life of the network's EMA, in images
    ema_rampup: float | None = 0.05
    seed: int = 0
    # bookkeeping
    checkpoint_every: int = 100
    sample_every: int = 400
    log_every: int = 10
    device: str = "auto"
    amp: bool = True
    feature_weights: str | None = None  # EfficientNet-Lite0 file for D; None: the packaged one
    progress: bool = True

    def __post_init__(self):
        for key in ("n_blocks", "enc_channel_base", "enc_channel_max", "sft_hidden"):
            if getattr(self, key) < 1:
                _bad(key, "must be >= 1")
        if self.skip_min_res < 4 or self.skip_min_res & (self.skip_min_res - 1):
            _bad("skip_min_res", f"must be a power of 2 >= 4, got {self.skip_min_res}")
        if self.freeze_decoder and not self.pretrained_decoder:
            _bad("freeze_decoder", "a randomly initialised decoder (pretrained_decoder: false) must be trained")
        if self.d_scales is not None and (not self.d_scales or any(sc not in D_SCALES for sc in self.d_scales)):
            _bad("d_scales", f"must be null or a non-empty subset of [0, 1, 2, 3], got {self.d_scales}")
        for key in ("w_l1", "w_l1_region", "w_adv", "w_perceptual", "w_inversion", "aux_weight", "decoder_lr_mult"):
            if getattr(self, key) < 0:
                _bad(key, "must be >= 0")
        if not 0 <= self.defect_fraction <= 1:
            _bad("defect_fraction", "must be in [0, 1]")
        for key in ("erase_dilate", "grad_clip"):
            if getattr(self, key) < 0:
                _bad(key, "must be >= 0")
        check_common(self)

    def network_kwargs(self) -> dict:
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
