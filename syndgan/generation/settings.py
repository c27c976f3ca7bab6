"""Settings of the generation-only baseline's fine-tuning: the schema of params.yaml's ``train_generation``
section (the stage adds only its output keys and threads) and what ``generators.pt`` stores. No torch import.

Each field is declared and checked once, here; a bad value raises ``ConfigError("<field>: <problem>")``, which
the params reader prefixes with the file and section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from syndgan.training.settings import PretrainSettings, check_common


@dataclass
class GenerationSettings:
    """One copy of the pretrained generator and its projected discriminator fine-tuned per defect class on that
    class's train-pool images (ProjectedGAN losses and DiffAugment as pretrained: the discriminator's stored spec).

    Defaults are demo-sized (about a CPU minute per class at 64 px on a free thread); few-shot GAN adaptation
    usually runs thousands of steps, so raise ``steps`` on real data.

    The demo's pretrained generator has not learned parts (1200 CPU steps of pretraining learn colour and texture,
    not layout: its samples are noise), so fine-tuning must learn each class's layout itself: the ``steps`` and
    ``lr_d`` defaults are what that took on the demo (issue 30.6).
    """

    # What the pretrained discriminator was trained with (its heads learned this loss on these features): None
    # takes pretraining's value from generator.pt; another explicit value is an error (finetune.as_pretrained).
    loss: Literal["hinge", "logistic"] | None = None
    batch_size: int = 8
    steps: int = 300  # per class; at 100 the demo's classes ended as flat colour or blobs, at 300 as parts
    lr_g: float = PretrainSettings.lr_g  # pretraining's optimiser (StyleGAN2's equalized learning rate)
    # lr_g, not pretraining's 2e-4 (PretrainSettings.lr_d): D must re-learn "real" as this class's few images. At
    # 2e-4 the pretrained heads stayed saturated (demo: hinge loss_d 0.03-0.1 from the first steps, so hardly any
    # gradient) and G, climbing a fixed D, ended as flat colour
    lr_d: float = PretrainSettings.lr_g
    betas: list[float] = field(default_factory=lambda: PretrainSettings().betas)
    ema: float = 500.0  # G_ema half-life, in images
    ema_rampup: float | None = 0.05
    seed: int = 0
    checkpoint_every: int = 50  # steps; a killed run resumes each class from its resume state
    sample_every: int = 100  # sample grids per class; 0: only the final one
    log_every: int = 10
    device: str = "auto"  # auto: CUDA when present (bf16 autocast), else CPU
    amp: bool = True
    feature_weights: str | None = None  # EfficientNet-Lite0 file for D's features; None: pretraining's
    progress: bool = True

    def __post_init__(self):
        check_common(self)  # the optimisation and bookkeeping rules every GAN training shares
