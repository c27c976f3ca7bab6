"""Settings of one classifier run: the schema of ``classify.train`` in params.yaml (no torch import).

The defaults are a plain ImageNet fine-tune, the instrument every augmentation method is measured with:
real images squashed from their native size straight to ``resolution`` (bilinear), AdamW with a one-cycle
schedule (``warmup`` of the budget rising, cosine decay after), batches that walk through shuffled epochs
of the training pool, random horizontal and vertical flips, class-weighted cross-entropy, and the
checkpoint with the best val macro-F1 among the validations at the end of each epoch from
``eval_from_epoch`` on. ``epochs`` count the *real* train set, so every method gets the same compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from syndgan.errors import ConfigError

IMBALANCE = ("weighted_ce", "balanced_sampler", "none")
INPUTS = ("native", "processed")
SCHEDULES = ("onecycle", "cosine")
AUGMENTS = ("flips", "dihedral", "none")


@dataclass
class SyntheticUse:
    """How a run uses its synthetic images (issue 12, lever 4), one rule for every method that makes images.

    ``weight`` scales a synthetic image's loss against a real image of its class (the class weights then
    balance the classes' total loss mass, so it moves weight between real and synthetic within a class);
    ``share`` draws that fraction of every batch from the synthetic images and the rest from the real ones,
    each its own stream of seeded shuffles (null: one shuffled pool of both). ``pretrain`` spends that
    fraction of the step budget on synthetic images only and the rest on real images only (pretrain, then
    fine-tune), under the one learning-rate schedule of the whole budget; each phase balances the classes of
    its own pool (synthetic images show defects only: normal is learnt in the real phase), val picks the
    best step in either phase, and early stopping counts the real phase's validations only. It excludes
    ``share`` (no batch mixes the two kinds) and a ``weight`` other than 1: with one kind per batch the
    weight would only scale the synthetic phase's loss, which AdamW all but ignores. The default is one pool
    at weight 1, the rule every earlier run used.
    """

    weight: float = 1.0
    share: float | None = None
    pretrain: float | None = None

    def __post_init__(self):
        if not self.weight > 0:
            raise ConfigError(f"weight: must be > 0, got {self.weight}")
        for key in ("share", "pretrain"):
            value = getattr(self, key)
            if value is not None and not 0 < value < 1:
                raise ConfigError(f"{key}: must be in (0, 1) or null, got {value}")
        if self.pretrain is not None and self.share is not None:
            raise ConfigError("pretrain: draws synthetic and real images in separate phases; set share: null")
        if self.pretrain is not None and self.weight != 1:
            raise ConfigError(
                "pretrain: no batch mixes synthetic and real images, so weight has nothing to weigh against; "
                "set weight: 1.0"
            )

    @property
    def is_default(self) -> bool:
        return self.weight == 1 and self.share is None and self.pretrain is None

    def label(self) -> str:
        """ "" for the default rule, else e.g. ``w0.3``, ``s0.25``, ``w0.3s0.25`` or ``p0.5`` (part of a run's
        dose key)."""
        return (
            ("" if self.weight == 1 else f"w{self.weight:g}")
            + ("" if self.share is None else f"s{self.share:g}")
            + ("" if self.pretrain is None else f"p{self.pretrain:g}")
        )

    def pretrain_steps(self, budget: int) -> int:
        """Steps of the synthetic-only phase in a budget (0 without ``pretrain``; else at least one step of
        each phase when the budget allows)."""
        if self.pretrain is None:
            return 0
        return max(0, min(budget - 1, max(1, round(self.pretrain * budget))))


def dose_key(dose: int | str, use: SyntheticUse) -> str:
    """A run's key among the candidates chosen on val: the dose (``30``, ``all``), plus ``_<rule>`` for a
    synthetic-use rule other than the default (``30_w0.3``)."""
    return str(dose) if use.is_default else f"{dose}_{use.label()}"


def dose_of_key(key: str) -> str:
    return key.split("_", 1)[0]


@dataclass
class ClassifierSettings:
    arch: str = "tf_efficientnet_lite0"  # timm name; packaged ImageNet weights exist for this one only
    pretrained: bool = True
    resolution: int = 96
    input: Literal["native", "processed"] = "native"  # real images from their source files | rasterize output
    batch_size: int = 32
    epochs: float | None = 10  # of the real train set (the same for every method); or set steps instead
    steps: int | None = None
    lr: float = 0.001  # peak learning rate
    weight_decay: float = 0.0001
    schedule: Literal["onecycle", "cosine"] = "onecycle"  # cosine: linear warm-up, cosine to zero
    warmup: float = 0.1  # share of the budget spent rising to lr
    eval_every: int | None = None  # validate every this many steps; null: once per epoch of the real train set
    eval_from_epoch: float = 6  # first validation at the end of this epoch (1-based): early weights never win
    patience: int | None = None  # stop after this many validations without improvement; null: never
    imbalance: Literal["weighted_ce", "balanced_sampler", "none"] = "weighted_ce"
    augment: Literal["flips", "dihedral", "none"] = "flips"  # random h/v flips | + 90-degree turns | none
    device: str = "auto"
    threads: int = 1  # torch CPU threads (process-wide, set by the caller); 0: torch default

    def __post_init__(self):
        def bad(key: str, msg: str):
            raise ConfigError(f"{key}: {msg}")

        for key, allowed in (
            ("imbalance", IMBALANCE),
            ("input", INPUTS),
            ("schedule", SCHEDULES),
            ("augment", AUGMENTS),
        ):
            if getattr(self, key) not in allowed:
                bad(key, f"must be one of {', '.join(allowed)}, got {getattr(self, key)!r}")
        if (self.steps is None) == (self.epochs is None):
            bad("steps", "set exactly one of steps and epochs (the other null)")
        if self.steps is not None and self.steps < 1:
            bad("steps", "must be >= 1")
        if self.epochs is not None and self.epochs <= 0:
            bad("epochs", "must be > 0")
        if self.resolution < 32:
            bad("resolution", f"must be >= 32 (EfficientNet downsamples 32x), got {self.resolution}")
        if self.batch_size < 2:
            bad("batch_size", "must be >= 2 (batch norm)")
        if self.lr <= 0:
            bad("lr", "must be > 0")
        if not 0 <= self.warmup < 1:
            bad("warmup", f"must be in [0, 1), got {self.warmup}")
        for key in ("weight_decay", "threads", "eval_from_epoch"):
            if getattr(self, key) < 0:
                bad(key, "must be >= 0")
        if self.eval_every is not None and self.eval_every < 1:
            bad("eval_every", "must be >= 1 or null (once per epoch)")
        if self.patience is not None and self.patience < 1:
            bad("patience", "must be >= 1 or null (never stop early)")

    def steps_per_epoch(self, n_real_train: int) -> int:
        return max(1, math.ceil(n_real_train / self.batch_size))

    def step_budget(self, n_real_train: int) -> int:
        """Optimizer steps of every run: ``steps``, or ``epochs`` over the real train set."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, round(self.epochs * self.steps_per_epoch(n_real_train)))

    def eval_interval(self, n_real_train: int) -> int:
        """Steps between validations: ``eval_every``, or one epoch of the real train set."""
        return self.eval_every or self.steps_per_epoch(n_real_train)

    def eval_steps(self, n_real_train: int, budget: int) -> list[int]:
        """Steps after which val is scored: every ``eval_interval`` steps, from ``eval_from_epoch``; and always the
        last step."""
        every = self.eval_interval(n_real_train)
        first = round(self.eval_from_epoch * self.steps_per_epoch(n_real_train))
        return sorted({s for s in range(every, budget + 1, every) if s >= first} | {budget})
