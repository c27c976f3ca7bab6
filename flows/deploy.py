"""The same two deployments on a work pool, for when one ``make serve`` machine is not enough.

    # process pool: runs flows as subprocesses of a worker started in the project root
    prefect work-pool create syndgan --type process
    python -m flows.deploy --pool syndgan
    prefect worker start --pool syndgan            # on each machine, in the project root

    # Kubernetes pool: an image holding the project (WORKDIR = project root, `pip install -e .` done)
    prefect work-pool create syndgan-k8s --type kubernetes
    python -m flows.deploy --pool syndgan-k8s --image registry.example.com/syndgan:0.1 --project-dir /app

Workers that share no disk share the DVC remote instead: set ``flows.dvc_pull`` / ``flows.dvc_push``.
The API address is the project's server (``flows.host`` / ``flows.port``) unless ``--api-url`` names another.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from flows.serve import project_flows_config
from flows.server import project_server_env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.deploy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--pool", required=True, help="work pool name (create it first: prefect work-pool create)")
    ap.add_argument("--project", default=".", help="this DVC project (default: current folder)")
    ap.add_argument("--project-dir", help="the project's path on the workers (default: --project)")
    ap.add_argument("--image", help="container image for docker / kubernetes pools")
    ap.add_argument("--build", action="store_true", help="let Prefect build (and push) --image from this folder")
    ap.add_argument("--api-url", help="Prefect API of a shared server (default: this project's server)")
    args = ap.parse_args(argv)

    root = Path(args.project).resolve()
    cfg = project_flows_config(root)
    os.environ.update(project_server_env(root, cfg))  # before the first prefect import
    if args.api_url:
        os.environ["PREFECT_API_URL"] = args.api_url
    os.chdir(root)  # entrypoints are relative to the project root, as on the workers

    from prefect import deploy

    from flows.deployments import build_deployments

    deployments = build_deployments(args.project_dir or root, cfg)
    deploy(
        *deployments,
        work_pool_name=args.pool,
        image=args.image,
        build=args.build,
        push=args.build,
        ignore_warnings=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
