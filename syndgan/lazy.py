"""Lazy package exports: a package lists ``{name: submodule}`` and imports the submodule on first use, so that
reading a settings schema (what params.yaml is checked against) does not import torch, numpy or scipy."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], preload: Mapping[str, Iterable[str]] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from ``package.<exports[name]>``. ``preload``:
    ``{name: submodules}`` imported before that name (e.g. the modules that register themselves in a registry
    the name reads); other names import their own submodule only."""
    namespace = import_module(package).__dict__
    preload = preload or {}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in preload.get(name, ()):
            import_module(f"{package}.{module}")
        value = getattr(import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value  # cached: later lookups skip __getattr__
        return value

    return __getattr__
