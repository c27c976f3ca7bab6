"""The augmentation methods as the pipeline sees them: the registry (``syndgan.augment``) plus params.yaml.

The registry is the one list of methods; params.yaml only says which to make (``made``: classify.methods,
evaluate.methods, then augment.extra_methods) and a method's options (``augment.<method>``, checked against its
settings dataclass). From the registry's class attributes the pipeline learns the rest: which training stage
wrote a method's network (``training_stage``; what the scarcity grid must run), and each augment stage's
inputs (``augment_items``: what dvc.yaml's ``augment`` foreach lists, written by ``pipeline.codedeps``).

``pipeline.config`` reads these sections unchecked, so that stages using no method do not import (nor, for DVC,
depend on) every method module; the stages that do, the entry points and ``pipeline.codedeps`` call
``validate``.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

from pipeline.config import Params
from pipeline.config_augment import AugmentConfig
from pipeline.typed_yaml import convert
from syndgan.augment import available_methods, method_class
from syndgan.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
# The training stage whose output each kind of network (``AugmentMethod.model``) is.
TRAINING_STAGES = {"synthesis": "train_synth", "generation": "train_generation"}
GATE_CODE = "syndgan/quality/gate.py"  # a training-time method's `scorer` dep: no images, nothing to score


def made(params: Params) -> list[str]:
    """The methods the augment stage makes, in order, once each: what classify and evaluate compare, and the
    others params asks for."""
    return list(dict.fromkeys([*params.classify.methods, *params.evaluate.methods, *params.augment.extra_methods]))


def settings(params: Params, name: str) -> Any:
    """Method ``name``'s settings: its section ``augment.<name>`` over the defaults of its settings dataclass."""
    cls = method_class(name).settings
    return convert(params.augment.sections.get(name, {}), cls, f"augment.{name}", params.path)


def options(params: Params, name: str) -> dict:
    """``name``'s settings as ``create_method`` keyword arguments, a checkpoint as a path under the project root."""
    out = dataclasses.asdict(settings(params, name))
    if "checkpoint" in out:
        out["checkpoint"] = str(params.resolve(out["checkpoint"]))
    return out


def checkpoint(params: Params, name: str) -> str | None:
    """The network method ``name`` renders with (as params.yaml names it), None for a method without one."""
    return settings(params, name).checkpoint if method_class(name).model else None


def training_stage(name: str) -> str | None:
    """The stage that trains the network method ``name`` reads (None: it reads none)."""
    model = method_class(name).model
    return TRAINING_STAGES[model] if model else None


def trainings(methods: list[str]) -> set[str]:
    """The training stages the networks of ``methods`` come from."""
    return {s for m in methods if (s := training_stage(m))}


def validate(params: Params) -> None:
    """One-line ConfigError for the first method name the registry does not know or section it rejects."""
    lists = {
        "classify.methods": params.classify.methods,
        "evaluate.methods": params.evaluate.methods,
        "augment.extra_methods": params.augment.extra_methods,
    }
    for key, names in lists.items():
        for i, name in enumerate(names):
            try:
                method_class(name)
            except ConfigError as e:
                raise ConfigError(f"{params.path}: {key}[{i}]: {e}") from None
    for name in params.augment.sections:
        if name not in available_methods():
            keys = sorted(f.name for f in dataclasses.fields(AugmentConfig) if not f.metadata.get("rest"))
            known = f"{', '.join(keys)}; or a method: {', '.join(available_methods())}"
            raise ConfigError(f"{params.path}: augment.{name}: unknown key (known: {known})")
        settings(params, name)


def module_file(name: str) -> str:
    """The file defining method ``name``, relative to the project root (POSIX)."""
    return Path(inspect.getfile(method_class(name))).resolve().relative_to(ROOT).as_posix()


def augment_items(params: Params, methods: list[str] | None = None) -> dict[str, dict[str, str]]:
    """dvc.yaml's augment foreach: per method made (or ``methods``), ``needs``, the network it renders with (its
    training stage's output: DVC deps cannot depend on a param), else its module; ``scorer``, what the quality
    gate's discriminator scorer reads for a method that makes images (always: with the gate off nothing reads
    it), else the gate's module."""
    items = {}
    for name in made(params) if methods is None else methods:
        cls = method_class(name)
        needs = module_file(name)
        if cls.model:  # as params.yaml names it, so that dvc.yaml reads the same
            stated = "checkpoint" in params.augment.sections.get(name, {})
            needs = f"${{augment.{name}.checkpoint}}" if stated else checkpoint(params, name)
        scorer = "${pretrain.out}/discriminator.pt" if cls.produces_images else GATE_CODE
        items[name] = {"needs": needs, "scorer": scorer}
    return items
