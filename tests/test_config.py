import os
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params, parse_params
from syndgan.errors import ConfigError


def test_repo_params_parse():
    p = load_params("params.yaml")
    assert p.rasterize.resolution >= 8
    assert list(p.ingest.classes) == ["bump", "chipping", "dust"]


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"ingest": {"split": {"train": "a lot"}}}, "ingest.split.train"),
        ({"ingest": {"splitt": {}}}, "ingest.splitt"),
        ({"rasterise": {}}, "rasterise"),
        ({"rasterize": {"resolution": 4}}, "rasterize.resolution"),
        ({"ingest": {"on_error": "ignore"}}, "ingest.on_error"),
        ({"ingest": {"sources": [{"format": "coco", "root": "x"}]}}, "ingest.sources[0].annotations"),
        ({"ingest": {"sources": [{"root": "x"}]}}, "ingest.sources[0].format"),
        ({"ingest": {"classes": {"normal": [1, 2, 3]}}}, "ingest.classes.normal"),
        ({"ingest": {"split": {"train": 0.5, "val": 0.1, "test": 0.1}}}, "ingest.split"),
        ({"demo": {"parts": True}}, "demo.parts"),
    ],
)
def test_bad_params_name_the_key(raw, key):
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert key in str(e.value)
    assert "\n" not in str(e.value)


def test_invalid_yaml_is_one_line(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("ingest: [unclosed")
    with pytest.raises(ConfigError, match="p.yaml: invalid YAML"):
        load_params(f)


def test_roundtrip_defaults(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"ingest": {"sources": [{"format": "labelme", "root": "data/raw/x"}]}}))
    p = load_params(f)
    assert p.ingest.sources[0].format == "labelme" and p.ingest.split.train == 0.7


def _write(path, doc):
    path.write_text(yaml.safe_dump(doc))
    return path


def test_overlay_merges_sections_and_replaces_values(tmp_path):
    base = _write(
        tmp_path / "params.yaml",
        {
            "ingest": {
                "classes": {"a": [1, 2, 3], "b": [4, 5, 6]},
                "seed": 3,
                "split": {"train": 0.5, "val": 0.2, "test": 0.3},
            },
            "rasterize": {"resolution": 32, "coverage": 0.3},
        },
    )
    overlay = _write(
        tmp_path / "real.yaml", {"ingest": {"classes": {"c": [7, 8, 9]}, "split": {"val": 0.1, "test": 0.4}}}
    )
    p = load_params(overlay, base=base)
    assert p.ingest.classes == {"c": [7, 8, 9]}  # a map is replaced, never unioned with the base's classes
    assert (p.ingest.split.train, p.ingest.split.val, p.ingest.split.test) == (0.5, 0.1, 0.4)
    assert p.ingest.seed == 3 and p.rasterize.resolution == 32 and p.rasterize.coverage == 0.3
    assert load_params(base, base=base).ingest.classes == {"a": [1, 2, 3], "b": [4, 5, 6]}


@pytest.mark.parametrize(
    "doc, key",
    [
        ({"ingest": {"clases": {}}}, "ingest.clases"),
        ({"rasterize": {"resolution": 64}, "rasterise": {}}, "rasterise"),
        ({"ingest": {"split": {"training": 0.7}}}, "ingest.split.training"),
        ({"ingest": []}, "ingest"),
    ],
)
def test_overlay_unknown_or_bad_key_is_one_line(tmp_path, doc, key):
    overlay = _write(tmp_path / "real.yaml", doc)
    with pytest.raises(ConfigError) as e:
        load_params(overlay, base="params.yaml")
    msg = str(e.value)
    assert msg.startswith(f"{overlay}: ") and key in msg and "\n" not in msg


def test_shipped_real_data_config_is_an_overlay_that_validates():
    path = Path("data/configs/magnetic-tile.yaml")
    raw = yaml.safe_load(path.read_text())
    assert "pretrain" not in raw and "report" not in raw  # only what differs from params.yaml
    p = load_params(path, base="params.yaml")
    base = load_params("params.yaml")
    assert list(p.ingest.classes) == ["blowhole", "break", "crack", "fray", "uneven"]
    assert [s.format for s in p.ingest.sources] == ["magnetic_tile"]
    assert p.pretrain == base.pretrain and p.report == base.report
    assert p.classify.train.resolution == 96 and p.evaluate.threads == 2


@pytest.mark.parametrize("path", sorted(Path("data/configs").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_config_validates_as_an_overlay(path):
    load_params(path, base="params.yaml")


def test_params_yaml_documents_every_flows_setting():
    """The README sends people to params.yaml's `flows` section: every FlowsConfig key is there, commented."""
    from dataclasses import fields

    from pipeline.config import FlowsConfig

    raw = yaml.safe_load(Path("params.yaml").read_text(encoding="utf-8"))
    assert sorted(raw["flows"]) == sorted(f.name for f in fields(FlowsConfig))
    assert load_params("params.yaml").flows == FlowsConfig()  # the shipped values are the defaults
    lines = Path("params.yaml").read_text(encoding="utf-8").split("\nflows:", 1)[1].split("\n\n")[0].splitlines()
    entries = [line for line in lines[1:] if line.startswith("  ") and not line.startswith("   ")]
    undocumented = [line.split(":")[0].strip() for line in entries if "#" not in line]
    assert undocumented == [], f"flows keys without a comment in params.yaml: {undocumented}"


def _plain(p) -> dict:
    from pipeline.typed_yaml import plain

    d = plain(p)
    d.pop("path")
    return d


@pytest.mark.parametrize(
    "path", [Path("params.yaml"), *sorted(Path("data/configs").glob("*.yaml"))], ids=lambda p: p.stem
)
def test_params_round_trip_through_the_schema(path):
    """Every shipped params file (data/configs/ as overlays of params.yaml) survives typed -> YAML -> typed, and the
    training sections hand the library its own settings class, rebuilt exactly from what a checkpoint stores."""
    from pipeline.config import library_settings
    from syndgan.generation.settings import GenerationSettings
    from syndgan.training.common import to_plain
    from syndgan.training.settings import PretrainSettings, SynthSettings

    p = load_params(path, base="params.yaml")
    again = parse_params(yaml.safe_load(yaml.safe_dump(_plain(p))))
    assert _plain(again) == _plain(p)
    sections = (
        (p.pretrain, PretrainSettings),
        (p.train_synth, SynthSettings),
        (p.train_generation, GenerationSettings),
    )
    for section, cls in sections:
        s = library_settings(section)
        assert type(s) is cls and cls(**to_plain(s)) == s
        assert "out" not in to_plain(s) and "threads" not in to_plain(s)  # the stage's keys stay in the stage


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"pretrain": {"fid_samples": 1}}, "pretrain.fid_samples"),
        ({"pretrain": {"diffaug": "color,blur"}}, "pretrain.diffaug"),
        ({"pretrain": {"patch_size": 4}}, "pretrain.patch_size"),
        ({"train_synth": {"skip_min_res": 6}}, "train_synth.skip_min_res"),
        ({"train_synth": {"freeze_decoder": True, "pretrained_decoder": False}}, "train_synth.freeze_decoder"),
        ({"train_synth": {"ablations": ["no_inversion", "no_inversion"]}}, "train_synth.ablations"),
        ({"train_synth": {"latent": "z"}}, "train_synth.latent"),
        ({"train_generation": {"steps": 0}}, "train_generation.steps"),
        ({"train_generation": {"betas": [0.5]}}, "train_generation.betas"),
        ({"train_generation": {"threads": -1}}, "train_generation.threads"),
        ({"train_generation": {"loss": "wgan"}}, "train_generation.loss"),
        ({"augment": {"gate": {"scorer": "gan"}}}, "augment.gate.scorer"),
        ({"augment": {"gate": {"oversample": 0.5}}}, "augment.gate.oversample"),
        ({"augment": {"gate": {"classifier": {"steps": 0}}}}, "augment.gate.classifier.steps"),
        ({"augment": {"gate": {"classifier": {"resolution": 16}}}}, "augment.gate.classifier.resolution"),
    ],
)
def test_training_settings_are_checked_once_naming_the_key(raw, key):
    with pytest.raises(ConfigError) as e:
        parse_params(raw)
    assert str(e.value).startswith(f"params.yaml: {key}: ") and "\n" not in str(e.value)


@pytest.mark.parametrize("kind", ["png", "latin1", "directory"])
@pytest.mark.parametrize("entry", [["pipeline.ingest"], ["pipeline.tools.run", "--workdir", "w"]])
def test_params_that_are_not_text_are_one_line_naming_the_file(tmp_path, kind, entry):
    """A PNG renamed .yaml, a non-UTF-8 file or a folder passed as --params: one line, no traceback."""
    import subprocess
    import sys

    bad = tmp_path / "mine.yaml"
    if kind == "png":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    elif kind == "latin1":
        bad.write_bytes("ingest:\n  on_error: skip  # caf\xe9\n".encode("latin-1"))
    else:
        bad.mkdir()
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-m", *entry, "--params", str(bad)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    expected = "is a directory" if kind == "directory" else "not a text (UTF-8) file"
    assert str(bad) in lines[0] and expected in lines[0], lines[0]
