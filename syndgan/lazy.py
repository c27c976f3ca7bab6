"""Lazy package exports: a package lists ``{name: submodule}`` and imports the submodule on first use, so that
reading a settings schema (what params.yaml is checked against) does not import torch, numpy or scipy."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, str], preload: Iterable[str] = ()) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: ``name`` comes from ``package.<exports[name]>``. ``preload``:
    submodules imported before the first name (e.g. the ones that register themselves in a registry)."""
    namespace = import_module(package).__dict__

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for module in preload:
            import_module(f"{package}.{module}")
        value = getattr(import_module(f"{package}.{exports[name]}"), name)
        namespace[name] = value  # cached: later lookups skip __getattr__
        return value

    return __getattr__
