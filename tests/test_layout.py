"""The pipeline/ folder says what each module is (issue 33.4): directly in pipeline/ only the DVC stages (stage name
= module name = params.yaml section) and the modules they import; benchmarks and studies in pipeline/experiments/,
commands and helpers no stage imports in pipeline/tools/. A benchmark or tool dropped flat into pipeline/ fails."""

from pathlib import Path

import yaml

from pipeline.tools.codedeps import stage_module
from syndgan.sources import module_sources

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = ROOT / "pipeline"
# Not stages, imported by them (each is in some stage's code deps): the shared infrastructure of the stages.
STAGE_SUPPORT = {
    "common",  # paths, JSON reading, logging, the resume folder
    "config",  # the typed params.yaml
    "config_augment",  # the augment section's dataclasses
    "config_checks",  # cross-section checks of params
    "typed_yaml",  # YAML into dataclasses
    "methods",  # params.yaml's methods through syndgan's registry
    "provenance",  # what a report was made from
    "reconstruction",  # train_synth's reconstruction metrics, for evaluate and report
    "report_inputs",  # what the report reads
}
SUBPACKAGES = {"experiments", "tools"}


def stage_modules() -> dict[str, str]:
    """dvc.yaml stage -> the module its cmd runs."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    return {name: stage_module(name, stage) for name, stage in stages.items()}


def test_flat_modules_are_stages_or_their_support():
    stages = {m.removeprefix("pipeline.") for m in stage_modules().values() if m.count(".") == 1}
    flat = {p.stem for p in PIPELINE.glob("*.py")} - {"__init__"}
    assert not stages & STAGE_SUPPORT
    stray = sorted(flat - stages - STAGE_SUPPORT)
    assert not stray, (
        f"pipeline/{{{', '.join(stray)}}}.py: neither a dvc.yaml stage nor stage support (STAGE_SUPPORT here); "
        "a benchmark or study belongs in pipeline/experiments/, a command or helper no stage imports in pipeline/tools/"
    )
    assert not sorted(STAGE_SUPPORT - flat), "STAGE_SUPPORT names a module that is gone"


def test_every_stage_runs_a_flat_module():
    for name, module in stage_modules().items():
        assert module.startswith("pipeline.") and module.count(".") == 1, f"stage {name} runs {module}"
        assert (PIPELINE / f"{module.split('.')[1]}.py").is_file(), f"stage {name}: no file for {module}"


def test_stage_support_is_imported_by_stages_and_stages_import_no_experiment_or_tool():
    closure: set[str] = set()
    for module in set(stage_modules().values()):
        closure |= set(module_sources(module, ("syndgan", "pipeline"), ROOT))
    unused = sorted(m for m in STAGE_SUPPORT if f"pipeline/{m}.py" not in closure)
    assert not unused, f"pipeline/{unused}: no stage imports it, so it is a tool (pipeline/tools/), not stage support"
    leaked = sorted(f for f in closure if any(f.startswith(f"pipeline/{p}/") for p in SUBPACKAGES))
    assert not leaked, f"a stage imports {leaked}: stage code lives in pipeline/ itself"


def test_subpackages_are_the_known_ones():
    found = {p.name for p in PIPELINE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert found == SUBPACKAGES
    for name in SUBPACKAGES:
        assert (PIPELINE / name / "__init__.py").is_file()
