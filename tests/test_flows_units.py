"""Pieces of the flows that need no Prefect server: params overrides, metrics table, flows config."""

from pathlib import Path

import pytest
import yaml

from pipeline.config import parse_params
from syndgan.errors import ConfigError

pytest.importorskip("prefect")

from flows.reproduce import to_overrides  # noqa: E402
from flows.stages import (  # noqa: E402
    _failure_summary,
    _flatten,
    metrics_description,
    metrics_table,
    project_root,
)


def test_overrides_round_trip_through_dvcs_set_param(tmp_path):
    """What the flow passes is parsed by DVC's own ``-S`` code back into the same values."""
    from dvc.utils.hydra import apply_overrides

    values = {
        "a.int": 3,
        "a.float": 0.0005,
        "a.bool": False,
        "a.none": None,
        "a.word": "labelme",
        "a.path": "data/raw/line 3",
        "a.numeric_text": "123",
        "a.quote": "it's",
        "a.list": [1, "x", 2.5],
        "a.map": {"k": 1, "v": "w z"},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"a": {k.split(".")[1]: "old" for k in values}}))
    apply_overrides(path, to_overrides(values))
    assert yaml.safe_load(path.read_text())["a"] == {k.split(".")[1]: v for k, v in values.items()}
    assert to_overrides({"~a.int": None, "+a.new": 1}) == ["~a.int", "+a.new=1"]


def test_metrics_table_and_report_link(tmp_path):
    """One row per metrics file, named by the file (the method), one column per metric, as DVC shows them."""
    metrics = {
        "metrics/headline/syndgan.json": _flatten({"f1": 50.2912, "dose": "all", "per": {"l1": [0.9, 0.7]}}),
        "metrics/headline/none.json": _flatten({"f1": 40.26, "fid": 61.02}),
    }
    assert metrics["metrics/headline/syndgan.json"] == {"f1": 50.2912, "dose": "all", "per.l1": "[0.9, 0.7]"}
    table = metrics_table(metrics)
    assert [r["row"] for r in table] == ["syndgan", "none"]
    assert table[0] == {
        "row": "syndgan",
        "dose": "all",
        "f1": "50.29",
        "fid": "",
        "per.l1": "[0.9, 0.7]",
        "file": "metrics/headline/syndgan.json",
    }
    assert table[1]["fid"] == "61.02" and table[1]["dose"] == ""
    results = [{"stage": "ingest", "ran": False}, {"stage": "evaluate", "ran": True}]
    report = tmp_path / "reports/report.html"
    text = metrics_description(metrics, results, report)
    assert "Stages run: evaluate; up to date (skipped by DVC): ingest." in text
    assert f"({report.as_uri()})" in text
    assert metrics_table({}) == [] and "No metrics yet" in metrics_description({}, results, None)


def test_failure_summary_names_the_stage_error_not_dvcs_wrapper():
    tail = [
        "Running stage 'ingest':",
        "> python -m pipeline.ingest",
        "data/raw/x/a.json: invalid JSON (line 1)",
        "ERROR: failed to reproduce 'ingest': failed to run: python -m pipeline.ingest, exited with 1",
    ]
    assert _failure_summary(tail) == "data/raw/x/a.json: invalid JSON (line 1)"


def test_failure_summary_prefers_the_one_line_error_over_tracebacks_and_file_lists():
    tail = [
        "Running stage 'ingest':",
        "> python -m pipeline.ingest",
        "Traceback (most recent call last):",
        '  File "x.py", line 3, in <module>',
        "ValueError: warning from a library, caught",
        "ingest: error: data/raw/x/a.json: invalid JSON (line 1)",
        *[f"Added 'data/raw/x/{i}.png'" for i in range(20)],
        "ERROR: failed to reproduce 'ingest': failed to run: python -m pipeline.ingest, exited with 1",
    ]
    assert _failure_summary(tail) == "ingest: error: data/raw/x/a.json: invalid JSON (line 1)"
    crash = ["> python -m pipeline.x", "Traceback (most recent call last):", '  File "x.py", line 3', "KeyError: 'a'"]
    crash += ["Added 'data/y.png'", "ERROR: failed to reproduce 'x': failed to run"]
    assert _failure_summary(crash) == "KeyError: 'a'"
    assert _failure_summary(["ERROR: failed to reproduce 'x'"]) == "no output"


def test_project_root_requires_dvc_yaml(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dvc.yaml"):
        project_root(tmp_path)
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    assert project_root(tmp_path) == Path(tmp_path).resolve()


def test_flows_config_defaults_and_validation():
    f = parse_params({}).flows
    assert (f.host, f.port, f.home, f.retrain_from) == ("127.0.0.1", 4200, ".prefect", "ingest")
    ok = parse_params({"flows": {"port": 4300, "retrain_cron": "0 2 * * *", "retrain_interval_minutes": None}})
    assert ok.flows.retrain_cron == "0 2 * * *" and ok.flows.retrain_interval_minutes is None
    bad = [
        ({"port": 0}, "flows.port"),
        ({"retries": -1}, "flows.retries"),
        ({"retrain_interval_minutes": 0}, "flows.retrain_interval_minutes"),
        ({"retrain_cron": "every day"}, "flows.retrain_cron"),
        ({"watch_suffixes": ["json"]}, r"flows.watch_suffixes\[0\]"),
        ({"prot": 1}, "flows.prot: unknown key"),
    ]
    for section, key in bad:
        with pytest.raises(ConfigError, match=key):
            parse_params({"flows": section})


def test_schedules_read_as_a_person_would_say_them():
    from datetime import timedelta

    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule

    from flows.ui_check import describe_schedule

    assert describe_schedule(IntervalSchedule(interval=timedelta(minutes=60))) == "every 60 min"
    assert describe_schedule(IntervalSchedule(interval=timedelta(seconds=90))) == "every 90 s"
    assert describe_schedule(CronSchedule(cron="0 2 * * *")) == "cron '0 2 * * *' (UTC)"
    assert describe_schedule(CronSchedule(cron="0 2 * * *", timezone="Europe/Berlin")) == (
        "cron '0 2 * * *' (Europe/Berlin)"
    )


def test_metrics_of_stages_left_behind_by_this_run_are_not_listed_as_current(tmp_path):
    """An ingest-only run must not present classify's metrics (from an older build) as its result."""
    import subprocess
    import sys

    from flows.stages import stale_outputs
    from pipeline.tools.dvcgraph import load_graph

    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  ingest: {cmd: 'true', deps: [src], outs: [data/m.json], metrics: [{metrics/ingest.json: {cache: false}}]}\n"
        "  classify: {cmd: 'true', deps: [data/m.json], metrics: [{metrics/classify.json: {cache: false}}]}\n"
        "  other: {cmd: 'true', deps: [src], metrics: [{metrics/other.json: {cache: false}}]}\n"
    )
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q", "--no-scm"], cwd=tmp_path, check=True)
    graph = load_graph(tmp_path)
    root = tmp_path.resolve()
    ingest_only = [{"stage": "ingest", "ran": True}]
    assert stale_outputs(root, graph, ingest_only) == ["metrics/classify.json"]
    assert stale_outputs(root, graph, [{"stage": "ingest", "ran": False}]) == []  # nothing rebuilt: all current
    both = [{"stage": "ingest", "ran": True}, {"stage": "classify", "ran": False}]
    assert stale_outputs(root, graph, both) == []

    metrics = {"metrics/ingest.json": {"images": 3}, "metrics/classify.json": {"f1": 0.5}}
    stale = stale_outputs(root, graph, ingest_only)
    assert [r["row"] for r in metrics_table(metrics, stale)] == ["ingest"]
    text = metrics_description(metrics, ingest_only, None, stale)
    assert "from an older build (a stage upstream ran in this run, theirs did not): `metrics/classify.json`" in text


def test_locks_of_dead_or_zombie_dvc_processes_are_released(tmp_path):
    """psutil counts an unreaped zombie as running, so DVC would refuse the next `repro` on its rwlock."""
    import json
    import logging
    import os
    import subprocess
    import time

    from flows.recovery import _release_dvc_locks

    zombie = subprocess.Popen(["true"])  # exits and is not waited for: a zombie
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
        path = tmp_path / ".dvc/tmp/rwlock"
        path.parent.mkdir(parents=True)
        me = {"pid": os.getpid(), "cmd": "dvc status"}
        dead = {"pid": zombie.pid, "cmd": "dvc repro slow"}
        path.write_text(json.dumps({"read": {"a": [dead, me], "b": [dead]}, "write": {"out": dead, "o2": me}}))
        _release_dvc_locks(tmp_path, logging.getLogger("test"))
        assert json.loads(path.read_text()) == {"read": {"a": [me]}, "write": {"o2": me}}
    finally:
        zombie.wait()


def test_a_cancel_while_params_are_edited_puts_them_back(tmp_path, monkeypatch):
    """A termination signal (a BaseException, not an Exception) in the middle of applying overrides."""
    import logging
    import subprocess

    from flows import reproduce

    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x"],
                   cwd=tmp_path, check=True)  # fmt: skip
    params = tmp_path / "params.yaml"
    params.write_text("augment:\n  seed: 0\n")
    before = params.read_bytes()
    monkeypatch.setattr(reproduce, "get_run_logger", lambda: logging.getLogger("t"))
    monkeypatch.setattr(reproduce, "load_params", lambda path: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        reproduce.apply_params.fn(str(tmp_path), ["augment.seed=7"])
    assert params.read_bytes() == before
