"""The generated parts of ``dvc.yaml``: each stage's code deps, derived from what the stage's module imports, and
the ``augment`` stage's foreach, derived from params.yaml and the registry of methods.

    python -m pipeline.tools.codedeps            # exit 1, naming each stage's files to add or remove, when stale
    python -m pipeline.tools.codedeps --write    # rewrite them in dvc.yaml (``make repro`` runs it first)

A stage's ``cmd`` runs ``python -m <module>``; its code deps are the files of ``CODE_PACKAGES`` that module
imports (``syndgan.sources.module_sources``: transitively, lazy imports included), so a change to any of them
makes ``dvc status`` report the stage, and to no other file. A folder stands for its files where the stage
imports every file DVC would hash there (``.dvcignore`` applied): shorter, and just as precise. ``--write``
replaces only those entries, at the place of the first one; data deps (``${...}``, ``data/raw``) and comments
stay as they are. The augment foreach holds one item per method params.yaml makes (``pipeline.methods``), with
the inputs only the registry knows (DVC expands a foreach but cannot derive a dependency from a param): a method
named in params.yaml gets its stage here, no hand edit of dvc.yaml.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from syndgan.sources import module_sources

ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("syndgan", "pipeline")  # the top-level folders of this project that stages run code from
_MODULE = re.compile(r"\bpython\s+-m\s+([\w.]+)")
_STAGE = re.compile(r"^  ([\w.-]+):\s*(#.*)?$")  # a stage: a key under the top-level ``stages:``
_DEPS = re.compile(r"^(\s+)deps:\s*(#.*)?$")
_FOREACH = re.compile(r"^(\s+)foreach:\s*(#.*)?$")
FOREACH_STAGE = "augment"  # the stage whose foreach is params.yaml's methods
_PLAIN = re.compile(r"[\w./-]+")


def is_code(entry: object) -> bool:
    """A literal path into this project's code (``${item.needs}`` and data paths are not)."""
    return isinstance(entry, str) and "${" not in entry and entry.split("/")[0] in CODE_PACKAGES


def stage_module(name: str, stage: dict) -> str:
    match = _MODULE.search(str(stage.get("do", stage).get("cmd", "")))
    if match is None:
        raise ValueError(f"dvc.yaml stage {name}: its cmd runs no `python -m <module>`, whose imports give its code")
    return match.group(1)


def code_deps(module: str, root: Path = ROOT) -> list[str]:
    """``module``'s imported files under ``root``, a folder standing for all of its files where it can."""
    from dvc.fs import LocalFileSystem
    from dvc.ignore import DvcIgnoreFilter

    files = set(module_sources(module, CODE_PACKAGES, root))
    ignore = DvcIgnoreFilter(LocalFileSystem(), str(root))
    hashed: dict[str, set[str]] = {}  # folder -> the files DVC hashes for it as a dependency

    def whole(folder: str) -> bool:
        if folder not in hashed:
            walk = ignore.walk(ignore.fs, str(root / folder))
            hashed[folder] = {(Path(top) / f).relative_to(root).as_posix() for top, _, names in walk for f in names}
        return hashed[folder] <= files

    deps = []
    for path in sorted(files):
        parts = path.split("/")
        folders = ["/".join(parts[:i]) for i in range(1, len(parts))]
        if any(deps and deps[-1] == f for f in folders):
            continue  # inside the folder just listed (sorted: its files follow it)
        deps.append(next((f for f in folders if whole(f)), path))  # the widest whole folder, else the file
    return deps


def expected(doc: dict, root: Path = ROOT) -> dict[str, list[str]]:
    """Stage name -> its code deps."""
    cache: dict[str, list[str]] = {}
    out = {}
    for name, stage in doc["stages"].items():
        module = stage_module(name, stage)
        if module not in cache:
            cache[module] = code_deps(module, root)
        out[name] = cache[module]
    return out


def expected_foreach(root: Path = ROOT) -> dict[str, dict[str, str]] | None:
    """The augment foreach for ``root``'s params.yaml (None without one): its methods checked, one line if wrong."""
    if not (root / "params.yaml").is_file():
        return None
    from pipeline.config import load_params
    from pipeline.methods import augment_items, validate

    params = load_params(root / "params.yaml")
    validate(params)
    return augment_items(params)


def _flow(value: str) -> str:
    return value if _PLAIN.fullmatch(value) else json.dumps(value)


def foreach_lines(items: dict[str, dict[str, str]], indent: str) -> list[str]:
    return [
        f"{indent}{name}: {{{', '.join(f'{k}: {_flow(v)}' for k, v in item.items())}}}\n"
        for name, item in items.items()
    ]


def differences(text: str, root: Path = ROOT) -> list[str]:
    """One line per stage whose code deps in ``text`` (a dvc.yaml) are not what its module imports."""
    stages = yaml.safe_load(text)["stages"]
    problems = []
    for name, want in expected({"stages": stages}, root).items():
        have = [d for d in stages[name].get("do", stages[name]).get("deps") or [] if is_code(d)]
        missing, extra = sorted(set(want) - set(have)), sorted(set(have) - set(want))
        said = [f"{verb} {', '.join(paths)}" for verb, paths in (("add", missing), ("remove", extra)) if paths]
        if not said and have != want:
            said = ["sort them, each once"]
        if said:
            problems.append(f"dvc.yaml stage {name} (imports of {stage_module(name, stages[name])}): {'; '.join(said)}")
    items = expected_foreach(root) if FOREACH_STAGE in stages else None
    if items is not None and stages[FOREACH_STAGE].get("foreach") != items:
        have = list(stages[FOREACH_STAGE].get("foreach") or [])
        problems.append(f"dvc.yaml stage {FOREACH_STAGE}: foreach {have} is not params.yaml's methods {list(items)}")
    return problems


def rewrite(text: str, root: Path = ROOT) -> str:
    """``text`` (a dvc.yaml) with each stage's code deps replaced by ``expected``'s, in place of the first one."""
    want = expected(yaml.safe_load(text), root)
    lines = text.splitlines(keepends=True)
    out, in_stages, stage, i, done = [], False, None, 0, set()
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if re.match(r"^[^\s#]", line):  # a top-level key: only under ``stages:`` are the stages
            in_stages, stage = line.startswith("stages:"), None
        elif in_stages and (m := _STAGE.match(line)):
            stage = m.group(1)
        deps = _DEPS.match(line)
        if not deps or stage not in want:
            continue
        inner, item = deps.group(1) + "  ", deps.group(1) + "  - "
        kept, at = [], None  # the list's other lines (entries, comments); where its first code entry was
        while i < len(lines) and lines[i].startswith(inner) and lines[i][len(inner) : len(inner) + 1] in ("-", "#"):
            entry = lines[i][len(item) :].split(" #", 1)[0].strip().strip("'\"") if lines[i].startswith(item) else ""
            if is_code(entry):
                at = len(kept) if at is None else at
            else:
                kept.append(lines[i])
            i += 1
        at = len(kept) if at is None else at
        out += [*kept[:at], *(f"{item}{d}\n" for d in want[stage]), *kept[at:]]
        done.add(stage)
    if missing := [name for name in want if name not in done]:
        raise ValueError(f"dvc.yaml stage {missing[0]}: no block-style `deps:` list to write its code deps into")
    items = expected_foreach(root) if FOREACH_STAGE in want else None
    return "".join(out if items is None else _rewrite_foreach(out, items))


def _rewrite_foreach(lines: list[str], items: dict[str, dict[str, str]]) -> list[str]:
    """``lines`` with the augment stage's foreach block (its entries and their comments) replaced by ``items``."""
    out, in_stages, stage, i = [], False, None, 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        i += 1
        if re.match(r"^[^\s#]", line):
            in_stages, stage = line.startswith("stages:"), None
        elif in_stages and (m := _STAGE.match(line)):
            stage = m.group(1)
        if stage == FOREACH_STAGE and (m := _FOREACH.match(line)):
            inner = m.group(1) + "  "
            while i < len(lines) and (lines[i].startswith(inner) or not lines[i].strip()):
                i += 1
            out += foreach_lines(items, inner)
            stage = None
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipeline.tools.codedeps", description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = ap.parse_args(argv)
    path = ROOT / "dvc.yaml"
    text = path.read_text(encoding="utf-8")
    if args.write:
        new = rewrite(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"{path}: code deps rewritten")
        return 0
    problems = differences(text)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print("run: python -m pipeline.tools.codedeps --write", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
