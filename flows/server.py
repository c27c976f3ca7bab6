"""One place for the Prefect server address, and a local server process (the database in the project).

With a port other than 4200 the UI loads but cannot reach its API unless ``PREFECT_UI_API_URL`` names the
same host and port as the server; clients need ``PREFECT_API_URL`` likewise. ``server_env`` derives all of
them from ``flows.host`` / ``flows.port`` in ``params.yaml``. No Prefect import here: callers put this
environment in place before Prefect reads its settings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path

OFFLINE_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "DVC_NO_ANALYTICS": "1",
}


def client_host(host: str) -> str:
    """Where clients connect: a wildcard bind address is reached through the loopback."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def ui_url(host: str, port: int) -> str:
    return f"http://{client_host(host)}:{port}"


def api_url(host: str, port: int) -> str:
    return f"{ui_url(host, port)}/api"


def server_env(host: str, port: int, home: str | Path) -> dict[str, str]:
    """Environment for the server, the UI it serves, and every client (flows, ``prefect`` CLI, ui-check)."""
    return {
        "PREFECT_HOME": str(Path(home).resolve()),
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_API_URL": api_url(host, port),
        "PREFECT_UI_API_URL": api_url(host, port),
        "PREFECT_UI_URL": ui_url(host, port),
        **OFFLINE_ENV,
    }


def project_server_env(project_dir: str | Path, flows_cfg) -> dict[str, str]:
    """``server_env`` for a project's ``flows`` params (``home`` relative to the project)."""
    project_dir = Path(project_dir).resolve()
    return server_env(flows_cfg.host, flows_cfg.port, project_dir / flows_cfg.home)


def is_healthy(api: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=timeout) as r:
            return r.status == 200 and json.loads(r.read() or b"null") is True
    except (urllib.error.URLError, OSError, ValueError):
        return False


class LocalServer:
    """``prefect server start`` as a child process group; ``stop`` ends the whole group (uvicorn included)."""

    def __init__(self, host: str, port: int, home: str | Path, log_path: str | Path | None = None):
        self.host, self.port, self.home = host, port, Path(home)
        self.env = server_env(host, port, home)
        self.api_url = self.env["PREFECT_API_URL"]
        self.log_path = Path(log_path) if log_path else self.home / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> LocalServer:
        if is_healthy(self.api_url):
            raise RuntimeError(f"a Prefect server already answers at {self.api_url}")
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", self.host, "--port", str(self.port)]
        self.proc = subprocess.Popen(
            cmd,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not is_healthy(self.api_url):
            if self.proc.poll() is not None:
                raise RuntimeError(f"Prefect server exited with {self.proc.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Prefect server not healthy at {self.api_url} after {timeout:.0f} s")
            time.sleep(0.3)
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return "".join(deque(f, maxlen=lines))
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.proc.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
