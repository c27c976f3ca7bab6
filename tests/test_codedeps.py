"""Code dependencies derived from imports: dvc.yaml's code deps per stage (pipeline.tools.codedeps) and the trainings'
resume digests (syndgan.sources), one computation for both."""

import shutil
from pathlib import Path

import pytest

from pipeline.tools.codedeps import code_deps, differences, main, rewrite
from syndgan import sources
from syndgan.sources import module_sources, source_digest

ROOT = Path(__file__).resolve().parents[1]
TRAININGS = (
    "syndgan.training.pretrain",
    "syndgan.training.synth",
    "syndgan.generation.finetune",
    "syndgan.classify.train",
)


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_dvc_yaml_code_deps_are_what_each_stage_imports(capsys):
    assert main([]) == 0, capsys.readouterr().err  # e.g. "dvc.yaml stage demo (...): add pipeline/common.py, ..."


LIB = {
    "lib/__init__.py": "",
    "lib/a.py": (
        "import os\nimport torch\nfrom typing import TYPE_CHECKING\n"
        "from lib.b import x\nfrom .d import y\nfrom lib.lazy import Thing\n"
        "if TYPE_CHECKING:\n    from lib import never\nelse:\n    import lib.maybe\n"
        "def f():\n    from lib import c  # a lazy import still counts\n"
    ),
    "lib/b.py": "x = 1\n",
    "lib/c.py": "",
    "lib/d.py": "y = 2\n",
    "lib/maybe.py": "",
    "lib/never.py": "",
    "lib/unused.py": "",
    "lib/lazy/__init__.py": (
        "from lib.lazyexp import lazy_exports\n"
        "_EXPORTS = {'Thing': 'thing', 'Other': 'other'}\n_REG = ('reg',)\n"
        "__getattr__ = lazy_exports(__name__, _EXPORTS, dict.fromkeys(('Thing',), _REG))\n"
    ),
    "lib/lazy/thing.py": "",
    "lib/lazy/other.py": "",
    "lib/lazy/reg.py": "",
    "lib/lazyexp.py": "",
    "app/__init__.py": "",
    "app/main.py": "import lib.lazy\nfrom lib import a\n",
}


def test_module_sources_follow_imports_transitively_lazy_ones_included(tmp_path):
    root = write(tmp_path, LIB)
    assert module_sources("lib.a", ["lib"], root) == [
        "lib/__init__.py",
        "lib/a.py",
        "lib/b.py",
        "lib/c.py",  # imported inside a function
        "lib/d.py",  # relative import
        "lib/lazy/__init__.py",
        "lib/lazy/reg.py",  # imported before Thing (preload)
        "lib/lazy/thing.py",  # Thing's module, not Other's
        "lib/lazyexp.py",
        "lib/maybe.py",
    ]  # not never.py (TYPE_CHECKING), unused.py, os or torch
    # the package bound as a whole may reach every export; other packages are not followed
    main_files = module_sources("app.main", ["app", "lib"], root)
    assert {"app/__init__.py", "app/main.py", "lib/a.py", "lib/lazy/other.py"} <= set(main_files)
    assert module_sources("app.main", ["app"], root) == ["app/__init__.py", "app/main.py"]
    with pytest.raises(ValueError, match="no source for module 'lib.nope'"):
        module_sources("lib.nope", ["lib"], root)


def test_a_registry_that_imports_its_whole_package_counts_every_module(tmp_path):
    """``import_all(__package__)`` (a registry discovering its entries) runs every module of that package."""
    files = {
        "reg/__init__.py": "",
        "reg/base.py": "from reg.lazyexp import import_all\ndef discover():\n    import_all(__package__)\n",
        "reg/one.py": "",
        "reg/two.py": "from reg import helper\n",
        "reg/helper.py": "",
        "reg/sub/__init__.py": "",
        "reg/sub/deep.py": "",  # another package's module: not imported by import_all("reg")
        "reg/lazyexp.py": "",
        "app.py": "import reg.one\n",
    }
    root = write(tmp_path, files)
    assert module_sources("reg.base", ["reg"], root) == [
        "reg/__init__.py", "reg/base.py", "reg/helper.py", "reg/lazyexp.py", "reg/one.py", "reg/two.py",
    ]  # fmt: skip
    assert module_sources("reg.one", ["reg"], root) == ["reg/__init__.py", "reg/one.py"]


def test_a_lazy_table_that_is_not_a_literal_is_an_error(tmp_path):
    root = write(tmp_path, {**LIB, "lib/lazy/__init__.py": "__getattr__ = lazy_exports(__name__, make())\n"})
    with pytest.raises(ValueError, match=r"lazy/__init__.py: the lazy export tables must be literals"):
        module_sources("lib.a", ["lib"], root)


PROJECT = {
    ".dvcignore": "__pycache__/\n",
    "syndgan/__init__.py": "",
    "syndgan/io.py": "",
    "syndgan/unused.py": "",
    "syndgan/models/__init__.py": "",
    "syndgan/models/net.py": "import torch\n",
    "syndgan/models/__pycache__/net.cpython-311.pyc": "",  # DVC ignores it: the folder stays whole
    "syndgan/data/__init__.py": "",
    "syndgan/data/read.py": "",
    "syndgan/data/write.py": "",
    "pipeline/__init__.py": "",
    "pipeline/other.py": "",
    "pipeline/common.py": "from syndgan.io import x\n",
    "pipeline/stage.py": (
        "from syndgan.models.net import Net\nfrom syndgan.data.read import r\n"
        "def main():\n    from pipeline.common import stage_main\n"
    ),
}
DVC_YAML = """\
# top comment
stages:
  one:              # stage comment
    cmd: python -m pipeline.stage --x 1
    deps:
      - data/raw    # data: kept
      - syndgan/old.py   # stale: dropped
      # a comment line: kept
      - ${x.out}
    outs: [o]
  two:
    foreach: [a, b]
    do:
      cmd: python -m pipeline.stage
      deps:
        - ${item}
    # after the deps
plots:
  - p: {x: a}
"""
NEW_DEPS = (
    "pipeline/__init__.py\npipeline/common.py\npipeline/stage.py\nsyndgan/__init__.py\nsyndgan/data/__init__.py\n"
    "syndgan/data/read.py\nsyndgan/io.py\nsyndgan/models\n"
).split()


def test_code_deps_list_imported_files_and_whole_folders(tmp_path):
    root = write(tmp_path, PROJECT)
    # not syndgan/unused.py, syndgan/data/write.py nor pipeline/other.py
    assert code_deps("pipeline.stage", root) == NEW_DEPS


def test_rewrite_replaces_only_the_code_deps_and_the_check_names_them(tmp_path):
    root = write(tmp_path, PROJECT)
    assert differences(DVC_YAML, root) == [
        "dvc.yaml stage one (imports of pipeline.stage): add " + ", ".join(NEW_DEPS) + "; remove syndgan/old.py",
        "dvc.yaml stage two (imports of pipeline.stage): add " + ", ".join(NEW_DEPS),
    ]
    new = rewrite(DVC_YAML, root)
    one = "".join(f"      - {d}\n" for d in NEW_DEPS)
    two = "".join(f"        - {d}\n" for d in NEW_DEPS)
    assert new == DVC_YAML.replace("      - syndgan/old.py   # stale: dropped\n", one).replace(
        "        - ${item}\n", "        - ${item}\n" + two
    )
    assert differences(new, root) == [] and rewrite(new, root) == new
    moved = "      - syndgan/io.py\n      - pipeline/common.py\n"
    shuffled = new.replace("      - pipeline/common.py\n", "", 1).replace("      - syndgan/io.py\n", moved, 1)
    assert differences(shuffled, root) == ["dvc.yaml stage one (imports of pipeline.stage): sort them, each once"]


def test_a_stage_that_runs_no_module_is_an_error(tmp_path):
    root = write(tmp_path, PROJECT)
    with pytest.raises(ValueError, match="stage one: its cmd runs no `python -m <module>`"):
        differences("stages:\n  one:\n    cmd: ./run.sh\n", root)


def test_every_stage_depends_on_the_shared_stage_code():
    """What the hand-kept lists missed: every stage imports pipeline/common.py, pipeline/config.py,
    syndgan/io.py and syndgan/errors.py."""
    for module in ("pipeline.demo", "pipeline.pretrain", "pipeline.report"):
        deps = code_deps(module)
        assert {"pipeline/common.py", "pipeline/config.py", "syndgan/io.py", "syndgan/errors.py"} <= set(deps)


@pytest.mark.parametrize("module", TRAININGS)
def test_resume_digest_covers_every_library_file_the_training_imports(module, tmp_path, monkeypatch):
    files = module_sources(module)
    assert {module.replace(".", "/") + ".py", "syndgan/io.py", "syndgan/errors.py"} <= set(files)
    assert all(f.startswith("syndgan/") for f in files)  # the library's code: trainings run without pipeline/
    before = source_digest(module)
    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "syndgan", copy / "syndgan", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(sources, "ROOT", copy)
    assert source_digest(module) == before  # the same files elsewhere: the same digest
    with (copy / "syndgan/report/tables.py").open("a") as f:  # imported by no training
        f.write("# unrelated\n")
    assert source_digest(module) == before
    with (copy / "syndgan/io.py").open("a") as f:
        f.write("# changed\n")
    assert source_digest(module) != before


def test_no_training_keeps_a_list_of_its_code():
    import importlib

    for module in TRAININGS:
        assert not hasattr(importlib.import_module(module), "CODE"), module
    from syndgan.generation import finetune
    from syndgan.training import pretrain

    assert finetune.RESUME_NEUTRAL is pretrain.RESUME_NEUTRAL  # fine-tuning runs pretraining's step
