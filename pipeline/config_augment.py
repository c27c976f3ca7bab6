"""params.yaml's ``augment`` section: which synthetic images each method makes, and how many per class."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from syndgan.augment.settings import PlacementSettings
from syndgan.quality.settings import GateSettings


@dataclass
class AugmentTargetsConfig:
    """Synthetic images added per defect class (counts of the train split, after rasterize.k_shot)."""

    mode: Literal["ratio", "count", "balance"] = "ratio"  # ratio x normals | count each | up to the largest class
    ratio: float = 0.5  # mode ratio: the paper adds about 0.5 x the normal count per defect class
    count: int = 30  # mode count
    per_class: dict[str, int] = field(default_factory=dict)  # absolute overrides, e.g. {dust: 100}


@dataclass
class AugmentConfig:
    """Class-balanced augmentation: one output folder per method, ``<out>/<method>``. The methods made are
    classify.methods, evaluate.methods and ``extra_methods`` (``pipeline.methods.made``); a method's options are
    its section ``augment.<method>``, checked against its settings in the registry (syndgan/augment), which
    this schema does not import: every stage reads params.yaml, and only those that use a method depend on it."""

    seed: int = 0
    targets: AugmentTargetsConfig = field(default_factory=AugmentTargetsConfig)
    placement: PlacementSettings = field(default_factory=PlacementSettings)  # syndgan/augment/settings.py
    extra_methods: list[str] = field(default_factory=list)  # also made, though neither classify nor evaluate uses them
    gate: GateSettings = field(default_factory=GateSettings)  # keep the best of oversampled images (syndgan/quality)
    threads: int = 1  # torch CPU threads for rendering networks; 0: torch default
    out: str = "data/augmented"
    # augment.<method>: every key not named above (pipeline.typed_yaml's `rest`), as written
    sections: dict[str, dict[str, Any]] = field(default_factory=dict, metadata={"rest": True})
