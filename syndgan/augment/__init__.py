"""Class-balanced defect augmentation: target counts, mask placement and a registry of methods.

``none`` and ``cutmix`` act at classifier training time; ``copy_paste`` and ``syndgan`` render
synthetic defect images from train normals and real train defect masks (see ``generate``).
"""

from syndgan.augment import copy_paste, cutmix, syndgan  # noqa: F401  (register the methods)
from syndgan.augment.base import METHODS, AugmentMethod, available_methods, create_method, register_method
from syndgan.augment.generate import check_provenance, generate_augmented
from syndgan.augment.placement import PlacementSettings
from syndgan.augment.targets import compute_targets, targets_table

__all__ = [
    "METHODS",
    "AugmentMethod",
    "PlacementSettings",
    "available_methods",
    "check_provenance",
    "compute_targets",
    "create_method",
    "generate_augmented",
    "register_method",
    "targets_table",
]
