"""The registry is the one list of augmentation methods: a new method is one module plus its name in params.yaml.

A toy method dropped into a copy of the project's ``syndgan/augment/`` runs through augment, classify,
classify_aggregate and report, and gets its DVC stages from ``pipeline.tools.codedeps``, with no other file edited.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import parse_params
from pipeline.methods import augment_items, made, trainings, validate
from syndgan.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

TOY = '''"""Toy method: the placed masks painted one flat grey."""

from dataclasses import dataclass

from syndgan.augment.base import AugmentMethod, register_method


@dataclass
class ToySettings:
    grey: int = 128


@register_method
class Toy(AugmentMethod):
    name = "toy"
    label = "Toy (flat grey)"
    settings = ToySettings

    def __init__(self, grey):
        self.grey = grey

    def options(self):
        return {"grey": self.grey}

    def render(self, normal, labelmap, placements, seed):
        out = normal.copy()
        out[labelmap > 0] = self.grey
        return out
'''

TINY = {
    "demo": {"parts": 16, "resolution": 64, "defect_fraction": 0.6},
    "rasterize": {"resolution": 32},
    "augment": {"targets": {"mode": "count", "count": 3}, "extra_methods": []},
    "classify": {
        "methods": ["none"],
        "seeds": [0],
        "train": {
            "resolution": 32, "batch_size": 4, "epochs": 1, "eval_from_epoch": 0, "pretrained": False,
            "input": "processed", "device": "cpu",
        },
        "save_model": False,
    },
    "evaluate": {"methods": []},
}  # fmt: skip


def _run(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    p = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if ok:
        assert p.returncode == 0, f"{args}:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture
def project(tmp_path):
    """A copy of the project with tiny settings, classify.methods: [none]."""
    proj = tmp_path / "proj"
    for d in ("syndgan", "pipeline"):
        shutil.copytree(ROOT / d, proj / d, ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / f, proj / f)
    from pipeline.config import load_raw, merge_params

    params = merge_params(load_raw(ROOT / "params.yaml"), TINY)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["-m", "pipeline.tools.codedeps", "--write"], proj)  # dvc.yaml as the tiny params make it
    return proj


def test_a_new_method_is_one_module_plus_one_params_line(project):
    proj = project
    (proj / "syndgan/augment/toy.py").write_text(TOY)
    before = (proj / "params.yaml").read_text()
    after = before.replace("  methods:\n  - none\n", "  methods:\n  - none\n  - toy\n", 1)
    assert len(after.splitlines()) == len(before.splitlines()) + 1  # the one line
    (proj / "params.yaml").write_text(after)

    # dvc.yaml: its generated part is stale until make repro (pipeline.tools.codedeps --write) writes augment@toy
    stale = _run(["-m", "pipeline.tools.codedeps"], proj, ok=False)
    assert stale.returncode == 1 and "dvc.yaml stage augment: foreach" in stale.stderr
    _run(["-m", "pipeline.tools.codedeps", "--write"], proj)
    foreach = yaml.safe_load((proj / "dvc.yaml").read_text())["stages"]["augment"]["foreach"]
    assert foreach["toy"] == {"needs": "syndgan/augment/toy.py", "scorer": "${pretrain.out}/discriminator.pt"}
    _run(["-m", "dvc", "init", "--no-scm", "-q"], proj)
    stages = _run(["-m", "dvc", "stage", "list"], proj).stdout
    assert "augment@toy" in stages and "classify@toy-0" in stages

    for stage in ("demo", "ingest", "rasterize"):
        _run(["-m", f"pipeline.{stage}"], proj)
    for method in ("none", "toy"):
        _run(["-m", "pipeline.augment", "--method", method], proj)
        _run(["-m", "pipeline.classify", "--method", method, "--seed", "0"], proj)
    info = json.loads((proj / "data/augmented/toy/augment.json").read_text())
    assert info["options"] == {"grey": 128} and info["images"] == 9  # 3 per class
    assert len(list((proj / "data/augmented/toy/images").iterdir())) == 9
    run = json.loads((proj / "reports/classify/toy-s0/metrics.json").read_text())
    assert run["method"] == "toy" and run["doses"]["all"]["synthetic_per_class"]["bump"] == 3
    _run(["-m", "pipeline.classify_aggregate"], proj)
    assert "toy" in json.loads((proj / "metrics/classify.json").read_text())
    _run(["-m", "pipeline.report"], proj)
    report = (proj / "reports/report.md").read_text()
    assert "Toy (flat grey)" in report  # its label, from the registry


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"classify": {"methods": ["none", "toyy"]}}, "params.yaml: classify.methods[1]: unknown augmentation method 'toyy'"),
        ({"augment": {"extra_methods": ["gan2"]}}, "params.yaml: augment.extra_methods[0]: unknown augmentation method"),
        ({"augment": {"toyy": {"grey": 1}}}, "params.yaml: augment.toyy: unknown key (known: extra_methods, gate"),
        ({"augment": {"copy_paste": {"feathr": 1.0}}}, "params.yaml: augment.copy_paste.feathr: unknown key"),
        ({"augment": {"copy_paste": {"feather": "wide"}}}, "params.yaml: augment.copy_paste.feather: expected a number"),
        ({"augment": {"cutmix": {"prob": 2}}}, "params.yaml: augment.cutmix.prob: must be in [0, 1]"),
        ({"augment": {"syndgan": [1]}}, "params.yaml: augment.syndgan: expected a mapping"),
    ],
)  # fmt: skip
def test_an_unknown_method_or_a_bad_option_is_one_line_naming_the_key(raw, message):
    with pytest.raises(ConfigError) as e:
        validate(parse_params({"ingest": {"classes": {"bump": [255, 0, 0]}}, **raw}))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_the_registry_answers_what_the_pipeline_named_by_hand():
    """The demo's augment stages, their inputs and the trainings a grid needs come from the registry."""
    from pipeline.config import load_params

    params = load_params(ROOT / "params.yaml")
    assert made(params) == ["none", "cutmix", "copy_paste", "syndgan", "hybrid", "generation"]
    items = augment_items(params)
    assert items["copy_paste"] == {
        "needs": "syndgan/augment/copy_paste.py",
        "scorer": "${pretrain.out}/discriminator.pt",
    }
    assert items["generation"]["needs"] == "${augment.generation.checkpoint}"
    assert items["none"]["scorer"] == "syndgan/quality/gate.py"
    assert trainings(["none", "copy_paste"]) == set()
    assert trainings(["hybrid", "generation"]) == {"train_synth", "train_generation"}


def test_an_overlay_sets_one_option_of_a_method_and_keeps_the_others():
    """augment.<method> sections merge key by key, as the sections the schema names do."""
    from pipeline.config import load_raw, merge_params
    from pipeline.methods import options, settings

    merged = merge_params(load_raw(ROOT / "params.yaml"), {"augment": {"hybrid": {"paste": {"feather": 3.0}}}})
    params = parse_params(merged)
    hybrid = settings(params, "hybrid")
    assert hybrid.paste.feather == 3.0 and hybrid.paste.match_intensity and hybrid.band == 2
    assert hybrid.checkpoint == "models/train_synth/synthesizer.pt"
    assert options(params, "cutmix") == {"alpha": 1.0, "prob": 0.5}
