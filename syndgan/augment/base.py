"""Augmentation methods and their registry.

A method either *renders* synthetic defect images (``produces_images``: given a train normal image, the
label map of the defects placed on it and the placements, return the defective image), *samples* whole
defect images of a class (``paired`` False, e.g. the generation-only GAN: ``sample`` and the ``sources`` the
images derive from; no normal image, no placed mask) or works at classifier *training time* on batches
(``mix_batch``, e.g. CutMix). Adding a method (a diffusion model...) is one subclass decorated with
``@register_method``; the augment stage, the provenance checks and the classifier need nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from syndgan.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from syndgan.augment.placement import Placement

METHODS: dict[str, type[AugmentMethod]] = {}


def register_method(cls: type[AugmentMethod]) -> type[AugmentMethod]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"augmentation method name {cls.name!r} is taken by {METHODS[cls.name].__name__}")
    METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(METHODS)


def create_method(name: str, **options: Any) -> AugmentMethod:
    """Instantiate a registered method; unknown names and options fail with a one-line ConfigError."""
    if name not in METHODS:
        raise ConfigError(f"unknown augmentation method {name!r} (known: {', '.join(available_methods())})")
    try:
        return METHODS[name](**options)
    except TypeError as e:
        raise ConfigError(f"augmentation method {name!r}: {e}") from None


class AugmentMethod:
    name: ClassVar[str] = ""
    produces_images: ClassVar[bool] = True  # False: applied at classifier training time only
    paired: ClassVar[bool] = True  # False: whole images sampled per class (``sample``), not rendered on a placement

    def options(self) -> dict[str, Any]:
        """What configures this instance (recorded in the augment output's ``augment.json``)."""
        return {}

    def prepare(self, class_names: Sequence[str]) -> None:
        """Called once before rendering (load a network, check it knows ``class_names``). Default: nothing."""

    def render(
        self,
        normal: np.ndarray,
        labelmap: np.ndarray,
        placements: Sequence[Placement],
        seed: int,
    ) -> np.ndarray:
        """Defective version of ``normal`` (uint8, (H, W) or (H, W, 3)) with defects where ``labelmap`` > 0."""
        raise TypeError(f"method {self.name!r} does not render images (applied at training time)")

    def sample(self, class_name: str, seed: int, size: int) -> np.ndarray:
        """Unpaired methods: one whole uint8 image of ``class_name``, (size, size) or (size, size, 3), from ``seed``."""
        raise TypeError(f"method {self.name!r} renders placed defects; it samples no whole images")

    def sources(self, class_name: str) -> tuple[list[str], list[str]]:
        """Unpaired methods: (normal images, images of the class) every sampled ``class_name`` image derives from,
        as image ids of the processed dataset (the manifest's ``normal_source`` and ``mask_source``)."""
        raise TypeError(f"method {self.name!r} renders placed defects; its sources are per image")

    def mix_batch(
        self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time hook: (images (B, C, H, W), soft targets (B, K)) -> mixed batch. Default: unchanged."""
        return x, y


@register_method
class NoAugmentation(AugmentMethod):
    """The honest baseline: the real training set, nothing added."""

    name = "none"
    produces_images = False
