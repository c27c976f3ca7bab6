"""Class-balanced defect augmentation: target counts, mask placement and a registry of methods.

``none`` and ``cutmix`` act at classifier training time; ``copy_paste``, ``syndgan`` and ``hybrid`` (copy-paste
with the seam repainted by SyNDGAN) render synthetic defect images from train normals and real train defect
masks (see ``generate``); ``generation`` samples whole defect images from per-class fine-tuned generators.

Names are imported on first use, so reading the placement schema (``syndgan.augment.settings``) imports neither
numpy nor scipy; the registry (``syndgan.augment.base``) imports every module of this package the first time it is
asked, and each method module registers its method: a new method is one module here.
"""

from syndgan.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "base",
    "AugmentMethod": "base",
    "available_methods": "base",
    "create_method": "base",
    "method_class": "base",
    "method_label": "base",
    "method_settings": "base",
    "register_method": "base",
    "check_provenance": "generate",
    "generate_augmented": "generate",
    "PlacementSettings": "settings",
    "compute_targets": "targets",
    "targets_table": "targets",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
