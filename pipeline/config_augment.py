"""params.yaml's ``augment`` section: which synthetic images each method makes, and how many per class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from syndgan.augment.settings import PlacementSettings
from syndgan.errors import ConfigError
from syndgan.quality.settings import GateSettings


@dataclass
class AugmentTargetsConfig:
    """Synthetic images added per defect class (counts of the train split, after rasterize.k_shot)."""

    mode: Literal["ratio", "count", "balance"] = "ratio"  # ratio x normals | count each | up to the largest class
    ratio: float = 0.5  # mode ratio: the paper adds about 0.5 x the normal count per defect class
    count: int = 30  # mode count
    per_class: dict[str, int] = field(default_factory=dict)  # absolute overrides, e.g. {dust: 100}


@dataclass
class CopyPasteConfig:
    feather: float = 1.5  # px of edge feathering
    match_intensity: bool = True  # shift pasted pixels to the target's local brightness

    def __post_init__(self):  # augment.copy_paste and augment.hybrid.paste alike
        if self.feather < 0:
            raise ConfigError(f"feather: must be >= 0, got {self.feather}")


@dataclass
class SyndganAugmentConfig:
    checkpoint: str = "models/train_synth/synthesizer.pt"  # written by the train_synth stage
    device: str = "auto"


@dataclass
class GenerationAugmentConfig(SyndganAugmentConfig):
    checkpoint: str = "models/train_generation/generators.pt"  # written by the train_generation stage


@dataclass
class HybridConfig(SyndganAugmentConfig):
    """copy_paste, then the synthesis network repaints the pasted mask's rim (syndgan/augment/hybrid.py)."""

    band: int = 2  # px inside the pasted mask's border repainted as defect (plus the network's margin outside)
    paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)  # the paste step

    def __post_init__(self):
        if self.band < 1:
            raise ConfigError(f"band: must be >= 1 px, got {self.band}")


@dataclass
class CutmixConfig:
    alpha: float = 1.0  # box area ~ Beta(alpha, alpha)
    prob: float = 0.5  # chance a training batch is mixed


@dataclass
class AugmentConfig:
    """Class-balanced augmentation: one output folder per method, ``<out>/<method>``."""

    seed: int = 0
    targets: AugmentTargetsConfig = field(default_factory=AugmentTargetsConfig)
    placement: PlacementSettings = field(default_factory=PlacementSettings)  # syndgan/augment/settings.py
    copy_paste: CopyPasteConfig = field(default_factory=CopyPasteConfig)
    syndgan: SyndganAugmentConfig = field(default_factory=SyndganAugmentConfig)
    hybrid: HybridConfig = field(default_factory=HybridConfig)
    generation: GenerationAugmentConfig = field(default_factory=GenerationAugmentConfig)
    cutmix: CutmixConfig = field(default_factory=CutmixConfig)
    gate: GateSettings = field(default_factory=GateSettings)  # keep the best of oversampled images (syndgan/quality)
    threads: int = 1  # torch CPU threads for rendering networks; 0: torch default
    out: str = "data/augmented"
