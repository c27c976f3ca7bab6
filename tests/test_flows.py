"""The Prefect flows against a real Prefect server (started once for this module) on a tiny DVC project.

The project (git + DVC, three stages: ingest -> count -> evaluate) reads a folder of small "annotation"
files, so these tests exercise the orchestration, not the heavy syndgan pipeline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("prefect")
pytestmark = pytest.mark.slow  # one Prefect server for the module (~10 s to start), real DVC runs

from prefect import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.events import emit_event  # noqa: E402
from prefect.events.worker import EventsWorker  # noqa: E402
from prefect.logging.handlers import APILogHandler, APILogWorker  # noqa: E402
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings  # noqa: E402

from flows.server import LocalServer  # noqa: E402

STAGES_PY = '''
"""Tiny stand-in pipeline: ingest -> count -> evaluate."""
import json
import sys
from pathlib import Path

import yaml


def ingest():
    rows = []
    for p in sorted(Path("src").glob("*.json")):
        try:
            label = json.loads(p.read_text())["label"]
        except (ValueError, KeyError, TypeError) as e:
            print(f"{p}: malformed annotation ({type(e).__name__})", file=sys.stderr)
            sys.exit(1)
        rows.append({"id": p.stem, "label": label, "image": p.with_suffix(".png").exists()})
    Path("data").mkdir(exist_ok=True)
    Path("data/manifest.json").write_text(json.dumps(rows))


def count():
    counts = {}
    for row in json.loads(Path("data/manifest.json").read_text()):
        counts[row["label"]] = counts.get(row["label"], 0) + 1
    Path("data/counts.json").write_text(json.dumps(counts, sort_keys=True))


def evaluate():
    seed = yaml.safe_load(Path("params.yaml").read_text())["ingest"]["seed"]
    counts = json.loads(Path("data/counts.json").read_text())
    Path("metrics").mkdir(exist_ok=True)
    scores = {"images": sum(counts.values()), "classes": len(counts), "seed": seed}
    Path("metrics/scores.json").write_text(json.dumps(scores))


{"ingest": ingest, "count": count, "evaluate": evaluate}[sys.argv[1]]()
'''

DVC_YAML = """
stages:
  ingest:
    cmd: python stages.py ingest
    deps: [stages.py, src]
    params: [ingest.seed]
    outs: [data/manifest.json]
  count:
    cmd: python stages.py count
    deps: [stages.py, data/manifest.json]
    outs: [data/counts.json]
  evaluate:
    cmd: python stages.py evaluate
    deps: [stages.py, data/counts.json]
    params: [ingest.seed]
    metrics:
      - metrics/scores.json:
          cache: false
"""

PARAMS_YAML = """
ingest:
  seed: 0
  sources:
    - {format: labelme, root: src}
flows:
  retries: 0
  retrain_interval_minutes: 60
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("prefect_home")
    saved = {k: os.environ.get(k) for k in ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK", "DVC_NO_ANALYTICS")}
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1", DVC_NO_ANALYTICS="1")
    server = LocalServer("127.0.0.1", _free_port(), home).start(timeout=180)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.api_url, PREFECT_HOME: str(home)}):
            yield server
            # deliver what is still queued while the server is up (else the workers retry at exit)
            APILogWorker.drain_all(timeout=10)
            EventsWorker.drain_all(timeout=10)
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("template") / "proj"
    (root / "src").mkdir(parents=True)
    (root / "stages.py").write_text(STAGES_PY)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(PARAMS_YAML)
    (root / ".gitignore").write_text(".syndgan/\n")
    for stem, label in (("a", "crack"), ("b", "dust")):
        (root / "src" / f"{stem}.json").write_text(json.dumps({"label": label}))
        (root / "src" / f"{stem}.png").write_bytes(b"\x89PNG" + stem.encode())
    _run(["git", "init", "-q"], root)
    _run(["git", "config", "user.email", "test@example.com"], root)
    _run(["git", "config", "user.name", "test"], root)
    _run([sys.executable, "-m", "dvc", "init", "-q"], root)
    _run(["git", "add", "-A"], root)
    _run(["git", "commit", "-qm", "tiny project"], root)
    return root


@pytest.fixture
def project(template, tmp_path, prefect_server):
    root = tmp_path / "proj"
    shutil.copytree(template, root, symlinks=True)
    return root


def _wait(fn, timeout=30.0, every=0.5):
    """Poll ``fn`` until it returns something truthy (server-side views are eventually consistent)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


def _task_runs(flow_run_id, expected: int):
    """The flow run's task runs once ``expected`` of them have reached a final state."""
    with get_client(sync_client=True) as client:

        def done():
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return [runs] if len(runs) >= expected and all(r.state and r.state.is_final() for r in runs) else None

        found = _wait(done)
    return found[0] if found else []


def _logs(flow_run_id) -> str:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        return "\n".join(
            log.message
            for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
        )


def _artifact(flow_run_id, key):
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
            )
        )
    return found[0] if found else None


def test_reproduce_runs_one_task_per_stage_and_publishes_metrics(project):
    from flows.reproduce import reproduce

    state = reproduce(project_dir=str(project), target="count", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert [r["stage"] for r in result["stages"]] == ["ingest", "count"]  # the target and its upstream only
    assert not (project / "metrics/scores.json").exists()

    state = reproduce(project_dir=str(project), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert [(r["stage"], r["ran"]) for r in result["stages"]] == [
        ("ingest", False),  # already up to date: DVC skipped it
        ("count", False),
        ("evaluate", True),
    ]
    assert result["metrics"] == {"metrics/scores.json": {"images": 2, "classes": 2, "seed": 0}}
    flow_run_id = state.state_details.flow_run_id

    runs = _task_runs(flow_run_id, expected=3)
    assert sorted(r.name for r in runs) == ["count", "evaluate", "ingest"]
    assert all(r.state.is_completed() for r in runs)
    artifact = _artifact(flow_run_id, "syndgan-metrics")
    assert artifact is not None and artifact.type == "table"
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert rows == [{"row": "scores", "classes": "2", "images": "2", "seed": "0", "file": "metrics/scores.json"}]
    logs = _wait(lambda: "Running stage 'evaluate'" in _logs(flow_run_id) and _logs(flow_run_id))
    assert "> python stages.py evaluate" in logs  # the stage's own output, streamed into the Prefect log
    assert "Stage 'ingest' didn't change, skipping" in logs
    lock = json.dumps(_dvc_lock(project))
    assert "data/manifest.json" in lock and "metrics/scores.json" in lock

    # a stage added to dvc.yaml is picked up without touching the flows; a target runs it and its upstream
    summary = """
  summary:
    cmd: python -c "import shutil; shutil.copy('data/counts.json', 'summary.json')"
    deps: [data/counts.json]
    outs: [summary.json]
"""
    (project / "dvc.yaml").write_text(DVC_YAML + summary)
    result = reproduce(project_dir=str(project), target="summary")
    assert [(r["stage"], r["ran"]) for r in result["stages"]] == [
        ("ingest", False),
        ("count", False),
        ("summary", True),
    ]
    assert (project / "summary.json").read_bytes() == (project / "data/counts.json").read_bytes()


def _dvc_lock(project: Path) -> dict:
    import yaml

    return yaml.safe_load((project / "dvc.lock").read_text())


def test_retrain_runs_on_new_image_and_is_a_noop_without_changes(project):
    from flows.retrain import retrain_on_new_defects as retrain

    first = retrain(project_dir=str(project))  # no state yet: everything is new
    assert first["changed"] and first["changes"]["added"]["count"] == 4
    lock_before = (project / "dvc.lock").read_text()
    state = json.loads((project / ".syndgan/watch_state.json").read_text())
    assert len(state["files"]) == 4

    (project / "src/c.json").write_text(json.dumps({"label": "crack"}))
    (project / "src/c.png").write_bytes(b"\x89PNGc")
    changed = retrain(project_dir=str(project), return_state=True)
    assert changed.is_completed(), changed.message
    result = changed.result()
    assert result["changes"]["added"] == {"count": 2, "paths": ["src/c.json", "src/c.png"]}
    assert [(r["stage"], r["ran"]) for r in result["stages"]] == [("ingest", True), ("count", True), ("evaluate", True)]
    assert (project / "dvc.lock").read_text() != lock_before
    assert json.loads((project / "metrics/scores.json").read_text())["images"] == 3
    flow_run_id = changed.state_details.flow_run_id
    assert "2 added, 0 modified, 0 removed under src" in _wait(lambda: _logs(flow_run_id))

    # the change was announced as an event
    def events():
        EventsWorker.drain_all()
        with get_client(sync_client=True) as client:
            r = client.request(
                "POST", "/events/filter", json={"filter": {"event": {"name": ["syndgan.sources.changed"]}}}
            )
        return [e for e in r.json()["events"] if e["payload"]["added"]["paths"] == ["src/c.json", "src/c.png"]]

    found = _wait(events)
    assert found and found[0]["resource"]["prefect.resource.id"] == f"syndgan.project.{project.name}"

    lock_after = (project / "dvc.lock").read_text()
    noop = retrain(project_dir=str(project), return_state=True)
    assert noop.is_completed() and noop.result() == {"changed": False, "watched": 6}
    assert (project / "dvc.lock").read_text() == lock_after
    assert _task_runs(noop.state_details.flow_run_id, expected=0) == []
    assert "nothing to do" in _wait(lambda: _logs(noop.state_details.flow_run_id))


def test_retrain_on_an_unchanged_clone_starts_no_stage_and_a_new_annotation_runs_from_ingest(project, tmp_path):
    """A fresh clone has no watch state and no DVC cache; dvc.lock says what was built from which sources."""
    from flows.retrain import retrain_on_new_defects as retrain

    _run([sys.executable, "-m", "dvc", "repro", "-q"], project)
    _run(["git", "add", "-A"], project)
    _run(["git", "commit", "-qm", "built"], project)
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(project), str(clone)], tmp_path)
    assert not (clone / ".syndgan").exists() and not (clone / "data/manifest.json").exists()
    lock = (clone / "dvc.lock").read_bytes()

    noop = retrain(project_dir=str(clone), return_state=True)
    assert noop.is_completed() and noop.result() == {"changed": False, "watched": 4}
    assert _task_runs(noop.state_details.flow_run_id, expected=0) == []
    assert (clone / "dvc.lock").read_bytes() == lock and not (clone / "data/manifest.json").exists()
    assert "as last built" in _wait(lambda: _logs(noop.state_details.flow_run_id))
    # the sources as built became the watch state: the next change is listed file by file
    assert len(json.loads((clone / ".syndgan/watch_state.json").read_text())["files"]) == 4

    (clone / "src/c.json").write_text(json.dumps({"label": "crack"}))
    result = retrain(project_dir=str(clone))
    assert result["changes"]["added"] == {"count": 1, "paths": ["src/c.json"]}
    assert [(r["stage"], r["ran"]) for r in result["stages"]] == [("ingest", True), ("count", True), ("evaluate", True)]
    assert json.loads((clone / "metrics/scores.json").read_text())["images"] == 3
    assert retrain(project_dir=str(clone)) == {"changed": False, "watched": 5}


def test_malformed_annotation_fails_the_run_and_keeps_the_last_good_artifacts(project):
    from flows.retrain import retrain_on_new_defects as retrain

    assert retrain(project_dir=str(project))["changed"]
    kept = {p: (project / p).read_bytes() for p in ("dvc.lock", "data/manifest.json", "metrics/scores.json")}
    watch_state = (project / ".syndgan/watch_state.json").read_bytes()

    (project / "src/bad.json").write_text("{not json")
    state = retrain(project_dir=str(project), return_state=True)
    assert state.is_failed()
    assert "src/bad.json: malformed annotation (JSONDecodeError)" in state.message
    flow_run_id = state.state_details.flow_run_id
    logs = _wait(lambda: "malformed" in _logs(flow_run_id) and _logs(flow_run_id))
    assert "src/bad.json: malformed annotation (JSONDecodeError)" in logs  # the ingest error, in Prefect
    runs = _task_runs(flow_run_id, expected=1)
    assert [(r.name, r.state.type.value) for r in runs] == [("ingest", "FAILED")]  # count, evaluate not started
    # what the UI shows for the task: the one-line error right after Prefect's prefix, DVC's wrapper after it
    assert "StageFailed: src/bad.json: malformed annotation (JSONDecodeError) (stage 'ingest'" in runs[0].state.message
    for path, data in kept.items():
        assert (project / path).read_bytes() == data, path
    assert (project / ".syndgan/watch_state.json").read_bytes() == watch_state  # the change is still pending

    (project / "src/bad.json").unlink()  # removing the bad file brings back the last good state
    assert retrain(project_dir=str(project)) == {"changed": False, "watched": 4}


def test_params_overrides_run_as_a_dvc_experiment(project):
    from flows.reproduce import reproduce

    bad = reproduce(project_dir=str(project), params={"ingest.no_such_key": 1}, return_state=True)
    assert bad.is_failed() and "no_such_key" in bad.message
    assert (project / "params.yaml").read_text() == PARAMS_YAML  # untouched

    result = reproduce(project_dir=str(project), params={"ingest.seed": 7})
    assert result["params"] == ["ingest.seed=7"]
    assert result["metrics"]["metrics/scores.json"]["seed"] == 7
    experiments = _run([sys.executable, "-m", "dvc", "exp", "list", "--name-only"], project).split()
    assert result["experiment"] in experiments
    shown = json.loads(_run([sys.executable, "-m", "dvc", "exp", "show", "--json"], project))
    assert "ingest.seed" in json.dumps(shown) or '"seed": 7' in json.dumps(shown)


def test_deployments_have_schedule_and_event_trigger(project, tmp_path):
    from flows.deployments import DEPLOYMENT_NAMES, RETRAIN_FULL_NAME, build_deployments
    from flows.ui_check import deployment_report
    from pipeline.config import load_params

    cfg = load_params(project / "params.yaml").flows
    for deployment in build_deployments(project, cfg):
        deployment.apply()
    report = {r["name"]: r for r in deployment_report(DEPLOYMENT_NAMES)}
    assert all(r["found"] for r in report.values())
    retrain = report[RETRAIN_FULL_NAME]
    assert retrain["schedules"] == ["every 60 min"]
    assert retrain["triggers"] == ["on syndgan.sources.uploaded"]
    assert report["reproduce/on-demand"]["schedules"] == [] and report["reproduce/on-demand"]["triggers"] == []

    # an upload event makes the server create a retrain run (no runner here, so it stays scheduled)
    emit_event(event="syndgan.sources.uploaded", resource={"prefect.resource.id": "syndgan.sources.test"})
    EventsWorker.drain_all()

    def triggered():
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[retrain["id"]]))
            )
        return [r for r in runs if "auto-scheduled" not in r.tags]

    runs = _wait(triggered, timeout=60)
    assert runs, "the event trigger did not create a flow run"
    assert runs[0].parameters == {"project_dir": str(project.resolve())}

    # the same deployments go to a process work pool without an image: entrypoints are module paths
    from prefect import deploy
    from prefect.client.schemas.actions import WorkPoolCreate

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="syndgan-test", type="process"))
    deploy(*build_deployments(project, cfg), work_pool_name="syndgan-test", print_next_steps_message=False)
    with get_client(sync_client=True) as client:
        pooled = client.read_deployment_by_name(RETRAIN_FULL_NAME)
    assert pooled.work_pool_name == "syndgan-test"
    assert pooled.entrypoint == "flows.retrain.retrain_on_new_defects"


def test_server_env_points_ui_and_clients_at_one_address():
    from flows.server import server_env

    env = server_env("127.0.0.1", 4321, "/tmp/x/.prefect")
    assert env["PREFECT_API_URL"] == env["PREFECT_UI_API_URL"] == "http://127.0.0.1:4321/api"
    assert env["PREFECT_UI_URL"] == "http://127.0.0.1:4321"
    assert env["PREFECT_SERVER_API_PORT"] == "4321" and env["PREFECT_HOME"] == "/tmp/x/.prefect"
    assert env["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and env["DO_NOT_TRACK"] == "1"
    assert server_env("0.0.0.0", 80, "h")["PREFECT_API_URL"] == "http://127.0.0.1:80/api"


def test_dvc_remote_carries_outputs_to_a_fresh_worker(project, tmp_path):
    """With flows.dvc_push / dvc_pull, a machine with only the git checkout reuses what another one ran."""
    from flows.reproduce import reproduce

    (project / "params.yaml").write_text(PARAMS_YAML + "  dvc_push: true\n  dvc_pull: true\n")
    _run([sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(tmp_path / "remote")], project)
    first = reproduce(project_dir=str(project))
    assert all(r["ran"] for r in first["stages"])
    assert any((tmp_path / "remote").rglob("*")), "nothing was pushed"

    worker = tmp_path / "worker"  # what a fresh worker has: the repository, no DVC cache, no outputs
    shutil.copytree(project, worker, ignore=shutil.ignore_patterns("cache", "data", ".syndgan"))
    assert not (worker / "data").exists()
    second = reproduce(project_dir=str(worker))
    assert [r["ran"] for r in second["stages"]] == [False, False, False]  # pulled, not recomputed
    assert (worker / "data/counts.json").read_bytes() == (project / "data/counts.json").read_bytes()
