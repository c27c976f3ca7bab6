"""Typed reading of YAML values against dataclass annotations: every wrong key or type is one line naming
its dotted key. The settings dataclasses (here and in the library) are the schema; nothing is copied."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from typing import Any, Literal

from syndgan.errors import ConfigError


def hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def rest_field(cls) -> str | None:
    """The field (``metadata={"rest": True}``) that takes every key ``cls`` does not name, e.g. augment's method
    sections, whose schemas a registry holds; that field's own name is no key."""
    return next((f.name for f in dataclasses.fields(cls) if f.metadata.get("rest")), None)


def plain(value: Any) -> Any:
    """``value`` (settings, lists, maps) as the YAML that ``convert`` reads back: dataclasses.asdict, but the
    ``rest`` field's keys inline."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        rest = rest_field(type(value))
        out = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name != rest}
        return {**out, **plain(getattr(value, rest))} if rest else out
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return {k: plain(v) for k, v in value.items()} if isinstance(value, dict) else value


_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def convert(value: Any, tp: Any, key: str, src: Any) -> Any:
    def fail(expected: str):
        raise ConfigError(f"{src}: {key}: expected {expected}, got {type(value).__name__} {value!r}")

    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return convert(value, a, key, src)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{src}: {key}: expected {tp}, got {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{src}: {key}: must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            fail(f"a mapping (section {tp.__name__})")
        fields = hints(tp)
        rest = rest_field(tp)
        names = {f.name for f in dataclasses.fields(tp)} - {rest}
        for k in value:
            if k not in names and rest is None:
                raise ConfigError(f"{src}: {key}.{k}: unknown key (known: {', '.join(sorted(names))})")
        missing = [
            f.name
            for f in dataclasses.fields(tp)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in value
        ]
        if missing:
            raise ConfigError(f"{src}: {key}.{missing[0]}: required key missing")
        kwargs = {k: convert(v, fields[k], f"{key}.{k}", src) for k, v in value.items() if k in names}
        if rest is not None:
            other = {k: v for k, v in value.items() if k not in names}
            item = typing.get_args(fields[rest])[1]
            kwargs[rest] = {k: convert(v, item, f"{key}.{k}", src) for k, v in other.items()}
        try:
            return tp(**kwargs)
        except ConfigError as e:  # the library's settings validate themselves: "<field>: <problem>"
            raise ConfigError(f"{src}: {key}.{e}") from None
    if origin is list:
        if not isinstance(value, list):
            fail("a list")
        return [convert(v, args[0], f"{key}[{i}]", src) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            fail("a mapping")
        return {
            convert(k, args[0], f"{key} key", src): convert(v, args[1], f"{key}.{k}", src) for k, v in value.items()
        }
    if tp is bool:
        if not isinstance(value, bool):
            fail("true or false")
        return value
    if tp in (int, float) and isinstance(value, str) and _EXPONENT.match(value.strip()):
        value = float(value)  # YAML 1.1 reads 4.5e7 or 1e-4 (no '.' or no exponent sign) as a string
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            fail("a whole number" if isinstance(value, float) else "an integer")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail("a number")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            fail("a string")
        return value
    raise ConfigError(f"{src}: {key}: unsupported type {tp}")  # a bug in this module, not in params
