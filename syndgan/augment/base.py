"""Augmentation methods and their registry: the one list of methods every other part asks.

A method either *renders* synthetic defect images (``produces_images``: given a train normal image, the
label map of the defects placed on it and the placements, return the defective image), *samples* whole
defect images of a class (``paired`` False, e.g. the generation-only GAN: ``sample`` and the ``sources`` the
images derive from; no normal image, no placed mask) or works at classifier *training time* on batches
(``mix_batch``, e.g. CutMix). Adding a method (a diffusion model...) is one module in this package: a subclass
decorated with ``@register_method``, its options a settings dataclass beside it (``settings``: what
``augment.<name>`` in params.yaml is checked against, the constructor's keyword arguments), its display name
(``label``) and the kind of trained network it reads from ``settings.checkpoint`` (``model``). The registry
imports every module of the package on first use, so the pipeline (augment, classify, provenance, report,
the scarcity benchmark) finds it with no other file edited; params.yaml's ``classify.methods`` runs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from syndgan.errors import ConfigError
from syndgan.lazy import import_all

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from syndgan.augment.placement import Placement

METHODS: dict[str, type[AugmentMethod]] = {}
MODELS = ("synthesis", "generation")  # the kinds of trained network a method may read (``AugmentMethod.model``)
_discovered = False


@dataclass
class NoSettings:
    """A method without options (``augment.<name>`` may be absent or ``{}``)."""


def register_method(cls: type[AugmentMethod]) -> type[AugmentMethod]:
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    if cls.name in METHODS and METHODS[cls.name] is not cls:
        raise TypeError(f"augmentation method name {cls.name!r} is taken by {METHODS[cls.name].__name__}")
    if not dataclasses.is_dataclass(cls.settings):
        raise TypeError(f"{cls.__name__}.settings must be a dataclass (its options), got {cls.settings!r}")
    if cls.model is not None:  # the pipeline reads the network's path to know which training made it
        if cls.model not in MODELS:
            raise TypeError(f"{cls.__name__}.model must be one of {MODELS} or None, got {cls.model!r}")
        if "checkpoint" not in {f.name for f in dataclasses.fields(cls.settings)}:
            raise TypeError(f"{cls.__name__} reads a {cls.model} network: its settings need a `checkpoint` field")
    METHODS[cls.name] = cls
    return cls


def _discover() -> dict[str, type[AugmentMethod]]:
    """Every method of this package: importing its modules registers them (once; later imports are cached)."""
    global _discovered
    if not _discovered:
        import_all(__package__)
        _discovered = True
    return METHODS


def available_methods() -> list[str]:
    return sorted(_discover())


def method_class(name: str) -> type[AugmentMethod]:
    """The registered class of ``name``; an unknown name fails with a one-line ConfigError listing the known."""
    methods = _discover()
    if name not in methods:
        raise ConfigError(f"unknown augmentation method {name!r} (known: {', '.join(sorted(methods))})")
    return methods[name]


def method_settings(name: str, **options: Any) -> Any:
    """``name``'s settings: ``options`` over its defaults, checked (a bad value: one-line ConfigError)."""
    cls = method_class(name)
    try:
        return cls.settings(**options)
    except (TypeError, ConfigError) as e:  # unknown option; a value its settings reject ("<field>: <problem>")
        raise ConfigError(f"augmentation method {name!r}: {e}") from None


def method_label(name: str) -> str:
    """The display name of method ``name``; any other name (an evaluated set, an unknown method) as it is."""
    cls = _discover().get(name)
    return (cls.label or cls.name) if cls is not None else name


def create_method(name: str, **options: Any) -> AugmentMethod:
    """Instantiate a registered method from its options (its settings' fields; the rest default)."""
    settings = method_settings(name, **options)
    return method_class(name)(**dataclasses.asdict(settings))


class AugmentMethod:
    name: ClassVar[str] = ""
    label: ClassVar[str] = ""  # display name in tables and figures (default: ``name``)
    settings: ClassVar[type] = NoSettings  # its options: a dataclass, the constructor's keyword arguments
    model: ClassVar[str | None] = None  # the kind of trained network it renders with (MODELS), at settings.checkpoint
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
    label = "Original data"
    produces_images = False
