"""Lazy package exports: a package lists ``{name: submodule}`` and imports the submodule on first use, so that
reading a settings schema (what params.yaml is checked against) does not import torch, numpy or scipy.
``import_all(package)``: every module of a package, for a registry whose entries register themselves on import
(``syndgan.sources`` reads a call with a literal package name, or ``__package__``, as importing them all)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from pkgutil import iter_modules
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


def import_all(package: str) -> None:
    """Import every module of ``package`` (not its subpackages' modules): dropping a file in is registering it."""
    path = import_module(package).__path__
    for info in iter_modules(path):
        if not info.ispkg:
            import_module(f"{package}.{info.name}")
