"""Settings of the augment library that params.yaml validates against (``augment.placement``); no numpy, so
reading the schema (pipeline.config) stays cheap. A bad value raises ``ConfigError("<field>: <problem>")``, which
the params reader prefixes with the file and section."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from syndgan.errors import ConfigError


@dataclass
class ElasticSettings:
    alpha: float = 0.0  # largest displacement (px, in the placed patch); 0: off
    sigma: float = 4.0  # smoothness: Gaussian of the noise (px); the larger, the more the mask bends as a whole

    def __post_init__(self):
        if self.alpha < 0:
            raise ConfigError(f"alpha: must be >= 0 (0: off), got {self.alpha}")
        if self.sigma <= 0:
            raise ConfigError(f"sigma: must be > 0, got {self.sigma}")


@dataclass
class PlacementSettings:
    """The schema of ``augment.placement`` in params.yaml; a bad value raises ``ConfigError("<field>: <problem>")``."""

    flip: bool = True  # random horizontal / vertical flips
    rotate90: bool = True  # random multiples of 90 degrees
    max_rotation: float = 15.0  # plus a uniform rotation in +-max_rotation degrees
    scale: list[float] = field(default_factory=lambda: [0.8, 1.25])  # uniform scale range
    min_context_agreement: float = 0.9  # fraction of context-ring pixels whose object/background match
    tries: int = 200  # candidate placements per (normal image, defect) before giving up on that normal
    max_defects: int = 1  # defects per synthetic image: uniform in 1..max_defects (same class)
    appearance_top_k: int = 3  # mask source drawn among the k most similar-looking sources (0: any)
    fg_window: int = 5  # foreground estimate: local-texture window (px)
    fg_separability: float = 0.75  # below this Otsu separability the whole image counts as object
    # mask diversity (syndgan/augment/deform.py, location.py); each off by default
    elastic: ElasticSettings = field(default_factory=ElasticSettings)  # smooth random warp of mask + pixels
    morph: int = 0  # random erosion / dilation of the mask by up to this many px; 0: off
    recombine: float = 0.0  # chance a mask is united with (part of) another mask of its class
    location_prior: bool = False  # surface defects at the edge distances their class has in train

    def __post_init__(self):
        def bad(key: str, msg: str):
            raise ConfigError(f"{key}: {msg}")

        if len(self.scale) != 2 or not 0 < float(self.scale[0]) <= float(self.scale[1]):
            bad("scale", f"must be [lo, hi] with 0 < lo <= hi, got {list(self.scale)}")
        if not 0 <= self.max_rotation <= 180:
            bad("max_rotation", f"must be in [0, 180] degrees, got {self.max_rotation}")
        for key in ("min_context_agreement", "fg_separability", "recombine"):
            if not 0 <= getattr(self, key) <= 1:
                bad(key, f"must be in [0, 1], got {getattr(self, key)}")
        for key in ("tries", "max_defects"):
            if getattr(self, key) < 1:
                bad(key, f"must be >= 1, got {getattr(self, key)}")
        if self.appearance_top_k < 0:
            bad("appearance_top_k", "must be >= 0 (0: any source)")
        if self.fg_window < 3:
            bad("fg_window", "must be >= 3")
        if self.morph < 0:
            bad("morph", f"must be >= 0 px (0: off), got {self.morph}")

    def record(self) -> dict[str, Any]:
        """The settings as augment.json records them. Diversity switches that are off are left out, so the
        default configuration writes the file it wrote before they existed (unchanged outputs for DVC)."""
        out = dataclasses.asdict(self)
        off = {"elastic": self.elastic.alpha == 0, "morph": not self.morph, "recombine": not self.recombine}
        off["location_prior"] = not self.location_prior
        return {k: v for k, v in out.items() if not off.get(k, False)}
