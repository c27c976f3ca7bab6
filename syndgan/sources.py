"""The source files a module runs: its imports, followed transitively inside given packages, read statically.

``module_sources("syndgan.training.pretrain")`` lists every file of ``syndgan`` that importing that module (and
calling into it) can execute, so a digest or a dependency list over them misses no code and names no unrelated
file. Imports are read with ``ast`` (no module is imported), including those inside functions (modules import
lazily) and excluding ``if TYPE_CHECKING:`` blocks, which never run. Importing ``a.b.c`` runs ``a/__init__.py``
and ``a/b/__init__.py`` too. A package whose ``__getattr__`` is ``syndgan.lazy.lazy_exports(__name__, exports,
preload)`` imports ``exports[name]`` (after ``preload[name]``) when ``name`` is imported from it, and any of them
when the package itself is imported as a whole; its tables must therefore be literals (or ``dict.fromkeys`` of
literals), which ``module_sources`` reads without running the package. A call ``import_all(<package>)``
(``syndgan.lazy``; a literal name or ``__package__``) imports every module of that package: a registry that
discovers its entries (``syndgan.augment``'s methods) runs them all.

``source_digest(module)``: sha256 over those files (paths and contents), what a resumable checkpoint records so
that changed code means a fresh run.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the folder holding the ``syndgan`` package


@dataclass
class _Lazy:
    exports: dict[str, str] = field(default_factory=dict)  # name -> submodule
    preload: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> submodules imported before


def module_sources(module: str, packages: Iterable[str] = ("syndgan",), root: str | Path = ROOT) -> list[str]:
    """Sorted POSIX paths, relative to ``root``, of the files of ``packages`` (top-level names under ``root``)
    that ``module`` imports, itself included. Raises ``ValueError`` when ``module`` is not such a file."""
    finder = _Finder(Path(root), frozenset(packages))
    if finder.file(module) is None:
        raise ValueError(f"no source for module {module!r} under {root} (packages: {', '.join(sorted(packages))})")
    finder.visit(module)
    return sorted(p.relative_to(finder.root).as_posix() for p in finder.files)


def source_digest(module: str) -> str:
    """sha256 of the library files ``module`` imports (``module_sources``): their paths and contents, in order."""
    h = hashlib.sha256()
    for rel in module_sources(module, root=ROOT):
        data = (ROOT / rel).read_bytes()
        h.update(f"{rel}\n{len(data)}\n".encode())
        h.update(data)
    return h.hexdigest()


class _Finder:
    def __init__(self, root: Path, packages: frozenset[str]):
        self.root, self.packages = root, packages
        self.seen: set[str] = set()
        self.files: set[Path] = set()
        self.tables: dict[str, _Lazy] = {}

    def file(self, module: str) -> Path | None:
        if module.split(".")[0] not in self.packages:
            return None
        base = self.root.joinpath(*module.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                return path
        return None

    def visit(self, module: str) -> None:
        parts = module.split(".")
        for i in range(1, len(parts) + 1):  # parent packages run first
            self._visit_one(".".join(parts[:i]))

    def _visit_one(self, module: str) -> None:
        if module in self.seen:
            return
        self.seen.add(module)
        path = self.file(module)
        if path is None:
            return
        self.files.add(path)
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _runtime_nodes(ast.parse(path.read_bytes(), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    self.visit(alias.name)
                    self._whole(alias.name)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, package)
                self.visit(base)
                for alias in node.names:
                    self._name(base, alias.name)
            elif isinstance(node, ast.Call) and ast.unparse(node.func).rpartition(".")[2] == "import_all":
                self._every_module(_package_arg(node, package, path))

    def _every_module(self, package: str) -> None:
        folder = self.file(package)
        if folder is None or folder.name != "__init__.py":
            return
        for file in sorted(folder.parent.glob("*.py")):
            if file.name != "__init__.py":
                self.visit(f"{package}.{file.stem}")

    def _name(self, base: str, name: str) -> None:
        """``from base import name``: a submodule, a lazily exported name, or an attribute of ``base``."""
        if name == "*":
            self._whole(base)
        elif self.file(f"{base}.{name}") is not None:
            self.visit(f"{base}.{name}")
        else:
            lazy = self._lazy(base)
            for sub in (*lazy.preload.get(name, ()), *((lazy.exports[name],) if name in lazy.exports else ())):
                self.visit(f"{base}.{sub}")

    def _whole(self, module: str) -> None:
        """The module itself is bound: any of its lazy exports may be reached through it."""
        lazy = self._lazy(module)
        for sub in sorted({*lazy.exports.values(), *(s for subs in lazy.preload.values() for s in subs)}):
            self.visit(f"{module}.{sub}")

    def _lazy(self, module: str) -> _Lazy:
        if module not in self.tables:
            path = self.file(module)
            is_package = path is not None and path.name == "__init__.py"
            self.tables[module] = _lazy_tables(ast.parse(path.read_bytes(), str(path)), path) if is_package else _Lazy()
        return self.tables[module]


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    parts = package.split(".")
    base = parts[: len(parts) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _package_arg(call: ast.Call, package: str, path: Path) -> str:
    arg = call.args[0] if len(call.args) == 1 and not call.keywords else None
    if isinstance(arg, ast.Name) and arg.id == "__package__":
        return package
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    raise ValueError(f"{path}: import_all takes a literal package name or __package__")


def _runtime_nodes(tree: ast.AST):
    """Every node, skipping the bodies of ``if TYPE_CHECKING:`` (their ``else`` runs)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            stack.extend(node.orelse)
        else:
            stack.extend(ast.iter_child_nodes(node))


def _lazy_tables(tree: ast.Module, path: Path) -> _Lazy:
    """The ``exports`` and ``preload`` tables of a ``__getattr__ = lazy_exports(...)`` package (none: empty)."""
    env: dict[str, object] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        call = node.value
        if isinstance(call, ast.Call) and ast.unparse(call.func).rpartition(".")[2] == "lazy_exports":
            bound = {k.arg: k.value for k in call.keywords}
            bound.update(zip(("package", "exports", "preload"), call.args, strict=False))
            try:
                exports = _static(bound["exports"], env)
                preload = _static(bound["preload"], env) if "preload" in bound else {}
            except (ValueError, KeyError, TypeError, SyntaxError):
                raise ValueError(f"{path}: the lazy export tables must be literals (or dict.fromkeys)") from None
            return _Lazy(dict(exports), {k: tuple(v) for k, v in (preload or {}).items()})
        try:
            env[node.targets[0].id] = _static(call, env)
        except (ValueError, KeyError, TypeError, SyntaxError):
            pass  # not a table
    return _Lazy()


def _static(node: ast.expr, env: dict[str, object]) -> object:
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "dict.fromkeys" and not node.keywords:
        return dict.fromkeys(*(_static(a, env) for a in node.args))
    return ast.literal_eval(node)
