"""Which values of a params file differ from the settings' defaults, and whether each says so on its line.

The settings dataclasses (pipeline/config.py, the library settings its sections embed and, for ``augment.<method>``,
the method's in syndgan/augment's registry) hold every default;
params.yaml states a value that differs only with a comment on the same line naming the default:
``epochs: 5  # default 10: ...``. Keys that equal their default may stay (DVC interpolates some; others
document the knobs users edit). ``python -m pipeline.tools.defaults [params.yaml]`` lists the differing values.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.config import Params
from pipeline.typed_yaml import convert, hints, rest_field
from syndgan.augment import method_class

MARKER = "default"


@dataclass
class Differing:
    key: str  # dotted, e.g. classify.train.epochs
    value: Any  # the params file's, typed
    default: Any  # the settings dataclass's
    line: int  # 1-based line of the key in the file
    comment: str  # the comment on that line ("" if none)

    @property
    def expected(self) -> str:
        """The default as the comment names it: YAML flow style (``96``, ``null``, ``[0.9, 0.999]``, ``{}``)."""
        return yaml.safe_dump(_plain(self.default), default_flow_style=True, width=10**6).removesuffix("...\n").strip()

    @property
    def documented(self) -> bool:
        """The line's comment names ``default`` and, after it, the default's value (as a whole token)."""
        at = self.comment.find(MARKER)
        rest = self.comment[at + len(MARKER) :] if at >= 0 else None
        return rest is not None and re.search(rf"(?<![\w.-]){re.escape(self.expected)}(?![\w.])", rest) is not None


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return {k: _plain(x) for k, x in v.items()} if isinstance(v, dict) else v


def differing(path: str | Path = "params.yaml") -> list[Differing]:
    """Every leaf of ``path`` whose value differs from its settings default. Nested settings are walked key by
    key; any other value (lists, free-form maps, lists of settings such as ``ingest.sources``) compares whole."""
    text = Path(path).read_text(encoding="utf-8")
    lines = text.splitlines()
    out: list[Differing] = []

    def walk(node: yaml.MappingNode, tp: Any, default: Any, key: str) -> None:
        fields = hints(tp)
        rest = rest_field(tp)
        for k_node, v_node in node.value:
            k = k_node.value
            dotted = f"{key}.{k}" if key else k
            if rest is not None and (k == rest or k not in fields):  # augment.<method>: its registered settings
                sub = method_class(k).settings
                sub_default = sub()
            else:
                sub, sub_default = fields[k], getattr(default, k)
            if dataclasses.is_dataclass(sub) and isinstance(v_node, yaml.MappingNode):
                walk(v_node, sub, sub_default, dotted)
                continue
            value = convert(yaml.safe_load(yaml.serialize(v_node)), sub, dotted, path)
            if value != sub_default:
                line = k_node.start_mark.line
                # the comment after the value when it ends on this line (a '#' inside it is no comment)
                end = v_node.end_mark if v_node.end_mark.line == line else k_node.end_mark
                comment = lines[line][end.column :].partition("#")[2]
                out.append(Differing(dotted, value, sub_default, line + 1, comment.strip()))

    root = yaml.compose(text)
    if root is not None:
        walk(root, Params, Params(), "")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("params", nargs="?", default="params.yaml")
    args = ap.parse_args(argv)
    rows = differing(args.params)
    for d in rows:
        state = "documented" if d.documented else f"UNDOCUMENTED: say '# {MARKER} {d.expected}: <why>' on its line"
        print(f"{args.params}:{d.line}: {d.key}: {d.value!r} (default {d.expected}) {state}")
    return 0 if all(d.documented for d in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
