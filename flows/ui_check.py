"""``make ui-check``: while ``make serve`` runs, check the deployments and their last runs through the API,
then screenshot the UI in headless Chromium and check that it rendered them (not the "Can't connect to
Server API" page that a mismatched ``PREFECT_UI_API_URL`` gives).

    python -m flows.ui_check [--out runs/ui_check] [--no-trigger]

When no deployment has run yet, a retrain run is started (``run_deployment``) and awaited, so the runs
page has something to show (``--no-trigger``: only report). Writes ``deployments.png``, ``runs.png``, ``last-run.png`` (the most
recent run's page), the rendered DOMs and ``ui_check.json`` under ``--out``. Exit code 0 when everything is there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from flows.serve import project_flows_config
from flows.server import is_healthy, project_server_env

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--hide-scrollbars",
    "--window-size=1440,900",
    "--virtual-time-budget=20000",  # let the single-page app fetch from the API and render
]
API_ERROR_TEXT = "Can't connect to Server API"


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    raise FileNotFoundError("no Chromium found: install it with `apt-get install -y chromium` (Debian/Ubuntu)")


def chromium(url: str, *, screenshot: Path | None = None, timeout: float = 120) -> str:
    """Render ``url`` headless; writes ``screenshot`` when given and returns the rendered DOM otherwise."""
    with tempfile.TemporaryDirectory(prefix="syndgan-chromium-") as profile:
        cmd = [find_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}"]
        cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        proc = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or (screenshot and not screenshot.is_file()):
        raise RuntimeError(f"chromium failed ({proc.returncode}) on {url}: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def describe_schedule(schedule) -> str:
    """A schedule as a person reads it ("every 60 min", "cron '0 2 * * *' (UTC)"), not its repr."""
    interval = getattr(schedule, "interval", None)
    if interval is not None:
        seconds = int(interval.total_seconds())  # minutes, as flows.retrain_interval_minutes gives it
        return f"every {seconds // 60} min" if seconds % 60 == 0 else f"every {seconds} s"
    cron = getattr(schedule, "cron", None)
    if cron is not None:
        return f"cron '{cron}' ({schedule.timezone or 'UTC'})"
    return str(schedule)


def deployment_report(names) -> list[dict]:
    """Each deployment with its schedules, its event triggers (automations) and its last started run."""
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound

    report = []
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                dep = client.read_deployment_by_name(name)
            except ObjectNotFound:
                report.append({"name": name, "found": False})
                continue
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=20,
            )
            started = [r for r in runs if r.start_time is not None]
            automations = client.read_resource_related_automations(f"prefect.deployment.{dep.id}")
            last = started[0] if started else None
            report.append(
                {
                    "name": name,
                    "found": True,
                    "id": str(dep.id),
                    "schedules": [describe_schedule(s.schedule) for s in dep.schedules],
                    "triggers": [a.name for a in automations],
                    "runs": len(runs),
                    "last_run": None
                    if last is None
                    else {
                        "id": str(last.id),
                        "name": last.name,
                        "state": last.state.type.value if last.state else None,
                        "start_time": str(last.start_time),
                    },
                }
            )
    return report


def _is_blank(png: Path) -> bool:
    from PIL import Image, ImageStat

    with Image.open(png) as im:
        return max(ImageStat.Stat(im.convert("L")).stddev) < 3.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.ui_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", default=".")
    ap.add_argument("--host", help="server address (default: flows.host)")
    ap.add_argument("--port", type=int, help="server port (default: flows.port)")
    ap.add_argument("--out", default="runs/ui_check", help="folder for screenshots and the report")
    ap.add_argument("--no-trigger", action="store_true", help="do not start a retrain run when none exists")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for a triggered run")
    args = ap.parse_args(argv)
    root = Path(args.project).resolve()
    env = project_server_env(root, project_flows_config(root, args.host, args.port))
    os.environ.update(env)  # before the first prefect import
    out = (root / args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []

    if not is_healthy(env["PREFECT_API_URL"]):
        print(f"no Prefect server at {env['PREFECT_API_URL']}: start `make serve` first", file=sys.stderr)
        return 2
    from prefect.deployments import run_deployment

    from flows.deployments import DEPLOYMENT_NAMES, RETRAIN_FULL_NAME

    report = deployment_report(DEPLOYMENT_NAMES)
    has_run = any(r.get("last_run") for r in report)
    if not has_run and not args.no_trigger and all(r["found"] for r in report):
        print(f"no deployment has run yet: starting {RETRAIN_FULL_NAME} and waiting (needs `make serve` running)")
        run = run_deployment(RETRAIN_FULL_NAME, timeout=args.timeout, poll_interval=2, as_subflow=False)
        print(f"  {run.name}: {run.state.type.value if run.state else '?'}")
        report = deployment_report(DEPLOYMENT_NAMES)
        has_run = any(r.get("last_run") for r in report)
    for r in report:
        if not r["found"]:
            problems.append(f"deployment {r['name']} not found (is `make serve` running for this project?)")
        else:
            last = r["last_run"]
            run_text = f"last run {last['name']} {last['state']} at {last['start_time']}" if last else "no runs yet"
            schedules = ", ".join(r["schedules"]) or "none"
            triggers = ", ".join(r["triggers"]) or "none"
            print(f"{r['name']}: schedule {schedules}; triggers {triggers}; {run_text}")
    if not has_run and not args.no_trigger:
        problems.append("no deployment has a started run")

    ui = env["PREFECT_UI_URL"]
    shots = {"deployments": f"{ui}/deployments", "runs": f"{ui}/runs"}
    last_runs = [r["last_run"] for r in report if r.get("last_run")]
    if last_runs:  # its task runs (one per DVC stage) and streamed logs
        latest = max(last_runs, key=lambda r: r["start_time"])
        shots["last-run"] = f"{ui}/runs/flow-run/{latest['id']}"
    for page, url in shots.items():
        png = out / f"{page}.png"
        chromium(url, screenshot=png)
        dom = chromium(url)
        (out / f"{page}.html").write_text(dom, encoding="utf-8")
        if API_ERROR_TEXT in dom:
            problems.append(f"{page}: the UI shows '{API_ERROR_TEXT}' (PREFECT_UI_API_URL mismatch?)")
        if _is_blank(png):
            problems.append(f"{page}: screenshot {png} is blank")
        if page == "deployments":
            for name in DEPLOYMENT_NAMES:
                if name.split("/")[1] not in dom:
                    problems.append(f"deployments page does not list {name}")
        print(f"screenshot: {png}")

    (out / "ui_check.json").write_text(
        json.dumps({"ui": ui, "deployments": report, "problems": problems}, indent=2) + "\n", encoding="utf-8"
    )
    for p in problems:
        print(f"PROBLEM: {p}", file=sys.stderr)
    print("ui-check: OK" if not problems else f"ui-check: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
