"""Cancel, crash and kill during a stage leave every committed output and dvc.lock byte-identical.

A flow run in its own process (as a Prefect worker or `serve` runs it) against the real Prefect server of
test_flows; the stage writes broken outputs, then waits. SIGTERM is what Prefect's runner sends on a cancel
(to the flow's process group, SIGKILL after a grace period); SIGKILL stands for a killed worker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_flows import _logs, _run, _wait, prefect_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

SLOW_PY = """
import json, os, sys, time
from pathlib import Path

for p in ("data", "metrics", "plots"):
    Path(p).mkdir(exist_ok=True)
if Path("src/slow").exists():  # a long stage, interrupted half-way: outputs truncated, then it waits
    Path("plots/p.csv").write_text("step,loss\\n1,")
    Path(".started").write_text(str(os.getpid()))
    time.sleep(300)
n = len(list(Path("src").iterdir()))
Path("data/out.txt").write_text("built from %d files\\n" % n)
Path("metrics/m.json").write_text(json.dumps({"files": n}))
Path("plots/p.csv").write_text("step,loss\\n1,0.5\\n2,0.25\\n")
"""

DVC_YAML = """
stages:
  slow:
    cmd: python slow.py
    deps: [slow.py, src]
    outs: [data/out.txt]
    metrics:
      - metrics/m.json: {cache: false}
    plots:
      - plots/p.csv: {cache: false, x: step, y: loss, title: loss}
"""

KEPT = ("dvc.lock", "data/out.txt", "metrics/m.json", "plots/p.csv")


@pytest.fixture
def built(tmp_path, prefect_server):  # noqa: F811
    root = tmp_path / "proj"
    (root / "src").mkdir(parents=True)
    (root / "src/a.json").write_text("{}")
    (root / "slow.py").write_text(SLOW_PY)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text("flows: {retrain_from: slow}\n")
    (root / ".gitignore").write_text(".syndgan/\n.started\n")
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        _run(cmd, root)
    _run([sys.executable, "-m", "dvc", "repro", "-q"], root)
    for cmd in (["git", "add", "-A"], ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "b"]):
        _run(cmd, root)
    return root, prefect_server


def _start_flow(root: Path, server) -> subprocess.Popen:
    """``reproduce`` in a process of its own; returns once the stage is half-way (outputs broken)."""
    (root / "src/slow").write_text("")
    repo = Path(__file__).resolve().parents[1]
    env = {
        **os.environ,
        "PREFECT_API_URL": server.api_url,
        "PYTHONPATH": str(repo),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    code = f"from flows.reproduce import reproduce; reproduce(project_dir={str(root)!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=repo, env=env)
    deadline = time.monotonic() + 120
    while not (root / ".started").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the stage did not start"
        time.sleep(0.2)
    assert (root / "plots/p.csv").read_text() == "step,loss\n1,"  # broken while the stage runs
    return proc


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_cancel_signal_during_a_stage_restores_everything_at_once(built):
    root, server = built
    before = {p: (root / p).read_bytes() for p in KEPT}
    proc = _start_flow(root, server)
    stage_pid = int((root / ".started").read_text())
    proc.send_signal(signal.SIGTERM)  # what Prefect's runner sends on a cancel
    assert proc.wait(timeout=120) != 0
    assert {p: (root / p).read_bytes() for p in KEPT} == before
    assert list((root / ".syndgan/running").glob("*.json")) == []
    assert _gone(stage_pid)  # the stage command does not go on writing after the restore


def test_killed_flow_is_repaired_by_the_next_run(built):
    from flows.reproduce import reproduce

    root, server = built
    before = {p: (root / p).read_bytes() for p in KEPT}
    proc = _start_flow(root, server)
    stage_pid = int((root / ".started").read_text())
    proc.kill()  # no Python runs: the journal is all that is left
    proc.wait(timeout=60)
    journals = list((root / ".syndgan/running").glob("*.json"))
    assert [json.loads(j.read_text())["stage"] for j in journals] == ["slow"]
    assert (root / "plots/p.csv").read_bytes() != before["plots/p.csv"]

    (root / "src/slow").unlink()  # sources as committed: the next run has nothing to build
    result = reproduce(project_dir=str(root))
    assert [(r["stage"], r["ran"]) for r in result["stages"]] == [("slow", False)]
    assert {p: (root / p).read_bytes() for p in KEPT} == before
    assert list((root / ".syndgan/running").glob("*.json")) == []
    assert _gone(stage_pid)


def test_cancel_from_the_api_of_a_served_run_restores_everything(built):
    """`prefect flow-run cancel` / the UI's Cancel: the runner of `make serve` kills the run's process group."""
    from prefect import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelling

    root, server = built
    before = {p: (root / p).read_bytes() for p in KEPT}
    (root / "src/slow").write_text("")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    port = server.api_url.rsplit(":", 1)[1].split("/")[0]
    serve = subprocess.Popen(
        [sys.executable, "-m", "flows.serve", "--project", str(root), "--port", port],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # the deployments exist once serve registered them
            try:
                run = run_deployment("reproduce/on-demand", timeout=0, as_subflow=False)
                break
            except ObjectNotFound:
                assert serve.poll() is None and time.monotonic() < deadline, "serve did not register the deployment"
                time.sleep(1)
        while not (root / ".started").exists():
            assert serve.poll() is None and time.monotonic() < deadline, "the stage did not start"
            time.sleep(0.2)
        stage_pid = int((root / ".started").read_text())
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(run.id, Cancelling(), force=True)
            while (state := client.read_flow_run(run.id).state).type != StateType.CANCELLED:
                assert time.monotonic() < deadline + 60, f"run not cancelled: {state.type}"
                time.sleep(0.5)
        deadline = time.monotonic() + 30
        while list((root / ".syndgan/running").glob("*.json")) and time.monotonic() < deadline:
            time.sleep(0.2)  # the cancellation hook may still be restoring
        assert list((root / ".syndgan/running").glob("*.json")) == []
        assert {p: (root / p).read_bytes() for p in KEPT} == before
        assert _gone(stage_pid)
        # the log says so in one line of ours, the last but Prefect's "Hook ... finished": no "Crash detected!"
        said = "restored slow's previous outputs (dvc.lock, the cached outputs, metrics/m.json, plots/p.csv)"
        lines = _wait(lambda: (text := _logs(run.id)).count(said) == 2 and text.splitlines(), timeout=30)
        assert lines and not [line for line in lines if "Crash detected" in line or "Crashed" in line]
        last = [line for line in lines if not line.startswith("Hook ")][-1]
        assert last.startswith("cancelled by the user; ") and last.endswith(said)
        # ... and the stage's task ends Cancelled with it (the other one of the two)
        assert [line for line in lines if said in line][0].startswith('Finished in state Cancelled("cancelled by')
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)
