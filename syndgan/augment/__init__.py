"""Class-balanced defect augmentation: target counts, mask placement and a registry of methods.

``none`` and ``cutmix`` act at classifier training time; ``copy_paste``, ``syndgan`` and ``hybrid`` (copy-paste
with the seam repainted by SyNDGAN) render synthetic defect images from train normals and real train defect
masks (see ``generate``); ``generation`` samples whole defect images from per-class fine-tuned generators.

Names are imported on first use, so reading the settings schema (``syndgan.augment.settings``, what params.yaml
is checked against) imports neither numpy nor scipy; the first use of a name that reads the registry of methods
(``_REGISTRY_NAMES``) also registers every method.
"""

from syndgan.lazy import lazy_exports

_EXPORTS = {
    "METHODS": "base",
    "AugmentMethod": "base",
    "available_methods": "base",
    "create_method": "base",
    "register_method": "base",
    "check_provenance": "generate",
    "generate_augmented": "generate",
    "PlacementSettings": "settings",
    "compute_targets": "targets",
    "targets_table": "targets",
}
_METHOD_MODULES = ("copy_paste", "cutmix", "generation", "hybrid", "syndgan")  # each registers its method on import
# The names that read the registry (generate_augmented and check_provenance look methods up by name).
_REGISTRY_NAMES = (
    "METHODS", "AugmentMethod", "available_methods", "create_method", "register_method", "check_provenance",
    "generate_augmented",
)  # fmt: skip

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS, dict.fromkeys(_REGISTRY_NAMES, _METHOD_MODULES))
