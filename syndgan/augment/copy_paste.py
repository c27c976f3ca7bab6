"""Copy-paste: the real defect's pixels pasted with its (transformed) mask, edges feathered.

The strong classical baseline: real defect appearance, new position and surroundings. Two things keep
the seam invisible: the alpha is the mask dilated and Gaussian-blurred by ``feather`` px (the defect
itself is pasted fully, a little of its surroundings fades in), and with ``match_intensity`` the
pasted pixels are shifted by the mean difference between target and source on the context ring
(a different exposure or tint of the same surface), separately for object and background pixels;
the ring's object/background layout already matches (placement rule), so like is compared with like.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from syndgan.augment.base import AugmentMethod, register_method
from syndgan.augment.placement import Placement
from syndgan.errors import ConfigError


def feather_alpha(mask: np.ndarray, known: np.ndarray, feather: float) -> np.ndarray:
    """Blend weights in [0, 1]: 1 on the mask, a Gaussian fall-off of ``feather`` px outside it."""
    m = mask.astype(np.float32)
    if feather > 0:
        grown = ndimage.binary_dilation(mask, iterations=int(math.ceil(feather))).astype(np.float32)
        m = np.maximum(ndimage.gaussian_filter(grown, feather), m)
    return np.clip(m, 0, 1) * known


def paste(target: np.ndarray, placement: Placement, feather: float, match_intensity: bool) -> None:
    """Paste one placement into ``target`` (float32, modified in place)."""
    region = target[placement.slices]
    src = placement.pixels.astype(np.float32)
    if match_intensity:
        # object and background pixels get their own shift (an edge defect's ring holds both)
        shift = np.zeros_like(src)
        for side in (True, False):
            ring = placement.ring & placement.known & (placement.src_fg == side)
            if ring.sum() >= 4:
                offset = region[ring].mean(axis=0) - src[ring].mean(axis=0)
                shift[placement.src_fg == side] = offset
        src = src + shift
    alpha = feather_alpha(placement.mask, placement.known, feather)
    if region.ndim == 3:
        alpha = alpha[..., None]
    region[...] = alpha * src + (1.0 - alpha) * region


@dataclass
class CopyPasteSettings:
    """``augment.copy_paste`` (and ``augment.hybrid.paste``)."""

    feather: float = 1.5  # px of edge feathering
    match_intensity: bool = True  # shift pasted pixels to the target's local brightness

    def __post_init__(self):
        if self.feather < 0:
            raise ConfigError(f"feather: must be >= 0, got {self.feather}")


@register_method
class CopyPaste(AugmentMethod):
    name = "copy_paste"
    label = "Copy-paste"
    settings = CopyPasteSettings

    def __init__(self, feather: float = 1.5, match_intensity: bool = True):
        if feather < 0:
            raise ValueError(f"feather must be >= 0, got {feather}")
        self.feather = float(feather)
        self.match_intensity = bool(match_intensity)

    def options(self) -> dict[str, Any]:
        return {"feather": self.feather, "match_intensity": self.match_intensity}

    def render(
        self, normal: np.ndarray, labelmap: np.ndarray, placements: Sequence[Placement], seed: int
    ) -> np.ndarray:
        out = np.asarray(normal, np.float32).copy()
        for p in placements:
            paste(out, p, self.feather, self.match_intensity)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)
