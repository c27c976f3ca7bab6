"""SyNDGAN: the trained synthesis network paints the placed defect masks into the normal image.

Uses ``syndgan.synthesis.Synthesizer`` (imported when the method is created, so this module and the
registry load without it). Placement, pairing and masks are exactly those every other method gets;
only the rendering differs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from syndgan.augment.base import AugmentMethod, register_method
from syndgan.augment.placement import Placement
from syndgan.errors import DataError, SyndganError


@dataclass
class SyndganSettings:
    """``augment.syndgan``."""

    checkpoint: str = "models/train_synth/synthesizer.pt"  # written by the train_synth stage
    device: str = "auto"


@register_method
class SyndganAugmentation(AugmentMethod):
    name = "syndgan"
    label = "SyNDGAN (ours)"
    settings = SyndganSettings
    model = "synthesis"

    def __init__(self, checkpoint: str | Path, device: str):
        self.checkpoint = Path(checkpoint)
        self.device = device
        self._synth = None

    def options(self) -> dict[str, Any]:
        return {"checkpoint": str(self.checkpoint), "device": self.device}

    def prepare(self, class_names: Sequence[str]) -> None:
        self.load(class_names)

    def load(self, class_names: Sequence[str] | None = None):
        """Load the synthesizer once; check its classes against the dataset's (ids must mean the same)."""
        if self._synth is not None:
            return self._synth
        try:
            from syndgan.synthesis import Synthesizer
        except ImportError as e:
            raise SyndganError(f"augmentation method {self.name!r} needs syndgan.synthesis: {e}") from None
        if not self.checkpoint.is_file():
            raise DataError(self.checkpoint, "synthesizer checkpoint not found; run `dvc repro train_synth` first")
        synth = Synthesizer.from_checkpoint(self.checkpoint, device=None if self.device == "auto" else self.device)
        names = getattr(synth, "class_names", None)
        if class_names is not None and names is not None and list(names) != list(class_names):
            raise DataError(
                self.checkpoint, f"trained for classes {list(names)}, but the dataset has {list(class_names)}"
            )
        self._synth = synth
        return synth

    def render(
        self, normal: np.ndarray, labelmap: np.ndarray, placements: Sequence[Placement], seed: int
    ) -> np.ndarray:
        import torch

        synth = self.load()
        torch.manual_seed(seed)  # any sampling inside the network is repeatable per image
        out = np.asarray(synth.synthesize(np.ascontiguousarray(normal), np.ascontiguousarray(labelmap)))
        if out.shape != normal.shape or out.dtype != np.uint8:
            raise SyndganError(
                f"{self.checkpoint}: synthesize returned {out.dtype} {out.shape} for a uint8 {normal.shape} image"
            )
        return out
