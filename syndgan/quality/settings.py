"""Settings of the quality gate: the schema of ``augment.gate`` in params.yaml (no torch import).

The gate renders ``oversample`` x the target count of synthetic images per class, scores each one and keeps the
best target count, with the same rule for every image-making method (copy_paste, syndgan, ...). Scorers:

- ``none``: no gate; the augment output is exactly what it is without this section.
- ``discriminator``: the pretraining projected discriminator's realism logit (mean over its logit maps).
- ``classifier``: P(intended class) from an EfficientNet fine-tuned in the augment stage on the real train pool
  only (after k-shot), for a fixed number of steps, keeping the last weights: nothing is chosen on val or test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from syndgan.classify.settings import ClassifierSettings
from syndgan.errors import ConfigError

SCORERS = ("none", "discriminator", "classifier")


@dataclass
class GateClassifierSettings:
    """The ``classifier`` scorer's training: a plain fine-tune (``syndgan.classify``) with these knobs."""

    steps: int = 100  # fixed budget; the last weights score
    resolution: int = 64
    batch_size: int = 16
    lr: float = 0.001  # AdamW peak, one-cycle schedule
    device: str = "auto"

    def __post_init__(self):
        if self.steps < 1:
            raise ConfigError(f"steps: must be >= 1, got {self.steps}")
        # the rest is the classifier's own schema: it names the key the same way
        self.classifier_settings()

    def classifier_settings(self) -> ClassifierSettings:
        """``classify.train``'s schema for this run: processed train images, one evaluation at the end only, on
        the training pool itself, so the one checkpoint there is to "select" is the last."""
        return ClassifierSettings(
            resolution=self.resolution,
            input="processed",
            batch_size=self.batch_size,
            epochs=None,
            steps=self.steps,
            lr=self.lr,
            eval_every=self.steps,
            eval_from_epoch=0,
            patience=None,
            device=self.device,
            threads=0,  # the augment stage sets torch's threads (augment.threads)
        )


@dataclass
class GateSettings:
    scorer: Literal["none", "discriminator", "classifier"] = "none"
    oversample: float = 2.0  # render ceil(oversample x target) candidates per class, keep the best target count
    classifier: GateClassifierSettings = field(default_factory=GateClassifierSettings)

    def __post_init__(self):
        if self.scorer not in SCORERS:
            raise ConfigError(f"scorer: must be one of {', '.join(SCORERS)}, got {self.scorer!r}")
        if not self.oversample >= 1:
            raise ConfigError(f"oversample: must be >= 1 (1 scores without rejecting), got {self.oversample}")

    @property
    def enabled(self) -> bool:
        return self.scorer != "none"
