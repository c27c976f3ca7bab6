"""Hybrid (issue 12, lever 5): copy-paste's real defect pixels, with the seam repainted by SyNDGAN.

The image is first exactly what ``copy_paste`` renders (same placements, same paste settings). The trained
synthesis network is then given a class map holding only the rim of each pasted mask: the mask minus the mask
eroded by ``band`` px, with the defect's class. The network blanks that rim plus its own erase margin outside
the mask and repaints it from the surrounding target image and the class map, so the defect's border and the
surface around it blend into the target's texture, while the defect's interior stays the real pasted pixels.
Outside the synthesizer's feathered blend (``dilate + feather`` px from the rim) the result equals the copy-paste
image exactly; so does the interior, farther than that from the rim. A defect thinner than 2 x ``band`` is all
rim: the network repaints it whole, as ``syndgan`` would.

The rim is drawn inside the recorded mask only: labelling surface pixels outside it as defect would have the
network paint defect texture where the written label map says "normal".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from syndgan.augment.base import register_method
from syndgan.augment.copy_paste import CopyPaste, CopyPasteSettings
from syndgan.augment.placement import Placement
from syndgan.augment.syndgan import SyndganAugmentation, SyndganSettings
from syndgan.errors import ConfigError


def rim_labels(shape: tuple[int, int], placements: Sequence[Placement], band: int) -> np.ndarray:
    """uint8 (H, W): each placed mask's pixels within ``band`` px of its border, with its class id; 0 elsewhere."""
    labels = np.zeros(shape, np.uint8)
    for p in placements:
        inner = ndimage.binary_erosion(p.mask, iterations=band, border_value=0)
        region = labels[p.slices]
        region[p.mask & ~inner] = p.class_id
    return labels


@dataclass
class HybridSettings(SyndganSettings):
    """``augment.hybrid``: copy_paste, then the synthesis network repaints the pasted mask's rim."""

    band: int = 2  # px inside the pasted mask's border repainted as defect (plus the network's margin outside)
    paste: CopyPasteSettings = field(default_factory=CopyPasteSettings)  # the paste step

    def __post_init__(self):
        if isinstance(self.paste, Mapping):  # options as augment.json records them
            self.paste = CopyPasteSettings(**self.paste)
        if self.band < 1:
            raise ConfigError(f"band: must be >= 1 px, got {self.band}")


@register_method
class Hybrid(SyndganAugmentation):
    name = "hybrid"
    label = "Hybrid (copy-paste, SyNDGAN seam)"
    settings = HybridSettings

    def __init__(self, checkpoint: str | Path, device: str, band: int, paste: Mapping[str, Any]):
        super().__init__(checkpoint, device)
        self.band = int(band)
        self.paste = CopyPaste(**dict(paste))

    def options(self) -> dict[str, Any]:
        return {**super().options(), "band": self.band, "paste": self.paste.options()}

    def render(
        self, normal: np.ndarray, labelmap: np.ndarray, placements: Sequence[Placement], seed: int
    ) -> np.ndarray:
        pasted = self.paste.render(normal, labelmap, placements, seed)
        return super().render(pasted, rim_labels(labelmap.shape, placements, self.band), placements, seed)
