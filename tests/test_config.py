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
