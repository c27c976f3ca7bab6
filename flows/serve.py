"""``make serve``: a local Prefect server (database under ``.prefect/``) and the deployments, served.

    python -m flows.serve                 # server on flows.host:flows.port + deployments, until Ctrl-C
    python -m flows.serve --print-url     # the UI address (make ui)
    eval "$(python -m flows.serve --print-env)"   # point the prefect CLI at this project's server

Server, UI and clients take their address from one place (``flows`` in params.yaml, or --host/--port), so
the UI never looks for its API on another port. A server already answering there is reused.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

from flows.server import LocalServer, is_healthy, project_server_env
from pipeline.config import FlowsConfig, load_params

log = logging.getLogger("flows.serve")


def project_flows_config(project_dir: Path, host: str | None = None, port: int | None = None) -> FlowsConfig:
    params_path = project_dir / "params.yaml"
    cfg = load_params(params_path).flows if params_path.exists() else FlowsConfig()
    changes = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    return dataclasses.replace(cfg, **changes)


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m flows.serve", description=__doc__.split("\n\n")[0])
    ap.add_argument("--project", default=".", help="DVC project root (default: current folder)")
    ap.add_argument("--host", help="bind address (default: flows.host)")
    ap.add_argument("--port", type=int, help="port (default: flows.port)")
    ap.add_argument("--print-url", action="store_true", help="print the UI address and exit")
    ap.add_argument("--print-env", action="store_true", help="print shell exports for Prefect clients and exit")
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    root = Path(args.project).resolve()
    cfg = project_flows_config(root, args.host, args.port)
    env = project_server_env(root, cfg)
    if args.print_url:
        print(env["PREFECT_UI_URL"])
        return 0
    if args.print_env:
        for key in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_UI_API_URL"):
            print(f"export {key}={shlex.quote(env[key])}")
        return 0

    os.environ.update(env)  # before the first prefect import: Prefect reads its settings once
    os.chdir(root)  # deployment entrypoints are relative to the project root
    server = None
    if is_healthy(env["PREFECT_API_URL"]):
        log.info("using the Prefect server already running at %s", env["PREFECT_API_URL"])
    else:
        log.info("starting the Prefect server on %s (PREFECT_HOME=%s)", env["PREFECT_UI_URL"], env["PREFECT_HOME"])
        server = LocalServer(cfg.host, cfg.port, env["PREFECT_HOME"]).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` ends the server too (finally below)
    try:
        from prefect import serve

        from flows.deployments import build_deployments

        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per API poll otherwise
        deployments = build_deployments(root, cfg)
        log.info("UI: %s  (make ui-check takes a screenshot)", env["PREFECT_UI_URL"])
        serve(*deployments)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
