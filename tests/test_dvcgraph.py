"""pipeline.tools.dvcgraph: stage order and neighbourhoods exactly as DVC derives them from dvc.yaml."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.tools.dvcgraph import load_graph

ROOT = Path(__file__).resolve().parents[1]

DVC_YAML = """
stages:
  report:            # defined first, runs last: the order must come from the graph, not the file
    cmd: cat e_*.txt > report.txt
    deps: [e_a_0.txt, e_a_1.txt, e_b_0.txt, e_b_1.txt]
    outs: [report.txt]
  ingest:
    cmd: python -c "print(1)" > data/manifest.txt
    deps: [src, /abs/external/source]
    params: [ingest.seed]
    outs: [data/manifest.txt]
    metrics: [{metrics/ingest.json: {cache: false}}]
  classify:
    foreach: ${methods}
    do:
      cmd: cat data/manifest.txt > c_${item}.txt
      deps: [data/manifest.txt]
      outs: ["c_${item}.txt"]
  evaluate:
    matrix:
      method: ${methods}
      seed: [0, 1]
    cmd: echo ${item.method} ${item.seed} > e_${item.method}_${item.seed}.txt
    deps: ["c_${item.method}.txt"]
    outs: ["e_${item.method}_${item.seed}.txt"]
  unrelated:
    cmd: echo x > u.txt
    outs: [u.txt]
"""


def dvc(*args, cwd):
    env = {"DVC_NO_ANALYTICS": "1", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvcgraph")
    assert dvc("init", "--no-scm", "-q", cwd=root).returncode == 0
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(yaml.safe_dump({"methods": ["a", "b"], "ingest": {"seed": 0}}))
    (root / "sub").mkdir()  # a second dvc.yaml: its stages are addressed as "sub/dvc.yaml:<name>"
    (root / "sub/dvc.yaml").write_text("stages:\n  post:\n    cmd: cp ../report.txt .\n    deps: [../report.txt]\n")
    return root


def test_order_is_topological_with_foreach_and_matrix_expanded(project):
    g = load_graph(project)
    assert g.order == [
        "ingest",
        "classify@a",
        "classify@b",
        "evaluate@a-0",
        "evaluate@a-1",
        "evaluate@b-0",
        "evaluate@b-1",
        "report",
        "unrelated",
        "sub/dvc.yaml:post",
    ]
    # the same stage names DVC itself lists
    listed = dvc("stage", "list", "--all", "--name-only", cwd=project)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(g.order)
    assert g.stages["evaluate@b-1"].upstream == ("classify@b",)
    assert g.stages["evaluate@b-1"].group == "evaluate"


def test_selection_upstream_downstream(project):
    g = load_graph(project)
    assert g.select("classify") == ["classify@a", "classify@b"]
    assert g.select("evaluate@a-1") == ["evaluate@a-1"]
    with pytest.raises(KeyError, match="unknown stage 'nope'"):
        g.select("nope")
    assert g.upstream_of(["evaluate@a-1"]) == ["ingest", "classify@a", "evaluate@a-1"]
    assert g.upstream_of(["unrelated"]) == ["unrelated"]
    assert g.downstream_of(["classify@b"]) == [
        "classify@b",
        "evaluate@b-0",
        "evaluate@b-1",
        "report",
        "sub/dvc.yaml:post",
    ]
    assert g.downstream_of(["ingest"]) == [n for n in g.order if n != "unrelated"]
    assert g.stages["sub/dvc.yaml:post"].upstream == ("report",)


def test_dependencies_and_outputs(project):
    g = load_graph(project)
    ingest = g.stages["ingest"]
    assert ingest.deps == ((project / "src").resolve(), Path("/abs/external/source"))  # params are not paths
    outs = {o.path.relative_to(project.resolve()).as_posix(): o.cached for o in ingest.outs}
    assert outs == {"data/manifest.txt": True, "metrics/ingest.json": False}
    assert g.depends_on_any("ingest", [project / "src/line3/a.json"])
    assert g.depends_on_any("ingest", ["/abs/external/source/x.png"])
    assert not g.depends_on_any("ingest", [project / "srcx/a.json", "/abs/external/other.png"])
    assert not g.depends_on_any("classify@a", [project / "src/a.json"])


def test_invalid_dvc_yaml_fails_with_dvcs_message(tmp_path):
    assert dvc("init", "--no-scm", "-q", cwd=tmp_path).returncode == 0
    (tmp_path / "dvc.yaml").write_text('stages:\n  a:\n    cmd: echo\n    deps: ["${missing.key}"]\n')
    with pytest.raises(Exception, match="missing"):
        load_graph(tmp_path)


@pytest.mark.skipif(not (ROOT / "dvc.yaml").exists(), reason="project dvc.yaml not written yet")
def test_project_pipeline_graph_matches_dvc(project_dvc):
    g = load_graph(ROOT)
    listed = dvc("stage", "list", "--all", "--name-only", cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    assert sorted(listed.stdout.split()) == sorted(g.order)
    position = {name: i for i, name in enumerate(g.order)}
    for name, info in g.stages.items():
        assert all(position[up] < position[name] for up in info.upstream)
    if {"ingest", "rasterize"} <= set(g.order):
        assert "rasterize" in g.downstream_of(["ingest"])
