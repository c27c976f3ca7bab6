"""Generation-only augmentation (issue 12; the paper's Projected FastGAN / ADA rows of Tables 1 and 4): whole
defect images sampled from the pretrained generator fine-tuned on each class's train-pool images (the
train_generation stage's ``generators.pt``, read by ``syndgan.generation.sampling``).

It answers whether SyNDGAN's translation design (normal image + mask -> defect) earns its complexity: the same
pretrained generator and discriminator, the same train pool, but no normal image, no mask and no placement. So
``generate_augmented`` samples these images unpaired (``paired`` False): image ``k`` of a class from the augment
seed alone, an all-0 label map (where the defect is is unknown), and as provenance the images the class's
generator learned from (``sources``), which ``check_provenance`` then proves are all in the train pool.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from syndgan.augment.base import AugmentMethod, register_method
from syndgan.errors import DataError


@dataclass
class GenerationMethodSettings:
    """``augment.generation``."""

    checkpoint: str = "models/train_generation/generators.pt"  # written by the train_generation stage
    device: str = "auto"


@register_method
class Generation(AugmentMethod):
    name = "generation"
    label = "Generation only (fine-tuned GAN)"
    settings = GenerationMethodSettings
    model = "generation"
    paired = False

    def __init__(self, checkpoint: str | Path, device: str):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self._generators = None

    def options(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "device": self.device}

    def prepare(self, class_names: Sequence[str]) -> None:
        self.load(class_names)

    def load(self, class_names: Sequence[str] | None = None):
        """Load the class generators once; their classes must be the dataset's (ids mean the same)."""
        if self._generators is not None:
            return self._generators
        from syndgan.generation.sampling import ClassGenerators

        if not self.checkpoint.is_file():
            raise DataError(self.checkpoint, "generators file not found; run `dvc repro train_generation` first")
        generators = ClassGenerators.from_file(self.checkpoint, None if self.device == "auto" else self.device)
        if class_names is not None and generators.class_names != list(class_names):
            raise DataError(
                self.checkpoint,
                f"fine-tuned for classes {generators.class_names}, but the dataset has {list(class_names)}",
            )
        self._generators = generators
        return generators

    def sources(self, class_name: str) -> tuple[list[str], list[str]]:
        g = self.load()
        g.generator(class_name)  # a class without a generator fails here, naming the file
        return list(g.normal_ids), list(g.sources[class_name])

    def sample(self, class_name: str, seed: int, size: int) -> np.ndarray:
        return self.load().sample(class_name, seed, size)
