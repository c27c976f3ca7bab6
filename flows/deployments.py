"""The two deployments: ``reproduce`` on demand, the retrain check on a schedule and on an event.

The retrain deployment runs every ``flows.retrain_interval_minutes`` (or on ``flows.retrain_cron``) and
whenever an event named ``flows.retrain_event`` arrives, e.g. from an upload script or a labelling tool:

    prefect event emit syndgan.sources.uploaded --resource-id syndgan.sources
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prefect.deployments.runner import EntrypointType
from prefect.events import DeploymentEventTrigger

from flows.reproduce import reproduce
from flows.retrain import retrain_on_new_defects

REPRODUCE = "on-demand"
RETRAIN = "scheduled"
REPRODUCE_FULL_NAME = f"{reproduce.name}/{REPRODUCE}"
RETRAIN_FULL_NAME = f"{retrain_on_new_defects.name}/{RETRAIN}"
DEPLOYMENT_NAMES = (REPRODUCE_FULL_NAME, RETRAIN_FULL_NAME)


def retrain_trigger(event: str) -> DeploymentEventTrigger:
    return DeploymentEventTrigger(
        name=f"on {event}",
        expect={event},
        match={"prefect.resource.id": "syndgan.*"},
        posture="Reactive",
        threshold=1,
        within=timedelta(0),
    )


def build_deployments(project_dir: str | Path, flows_cfg) -> list:
    """RunnerDeployments for ``prefect.serve`` or ``prefect.deploy`` (a work pool); both run ``project_dir``.

    Entrypoints are module paths (``flows.retrain.retrain_on_new_defects``), not file paths: any worker with
    this package installed can load them, whatever its current folder.
    """
    root = str(Path(project_dir).resolve())
    if flows_cfg.retrain_cron:
        schedule = {"cron": flows_cfg.retrain_cron}
    elif flows_cfg.retrain_interval_minutes:
        schedule = {"interval": timedelta(minutes=flows_cfg.retrain_interval_minutes)}
    else:
        schedule = {}
    return [
        reproduce.to_deployment(
            name=REPRODUCE,
            parameters={"project_dir": root},
            description="Reproduce the DVC pipeline, one task per stage (target, params overrides, force).",
            tags=["syndgan", "dvc"],
            concurrency_limit=1,
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        retrain_on_new_defects.to_deployment(
            name=RETRAIN,
            parameters={"project_dir": root},
            description="Rerun ingest and downstream when annotation files or images under the sources change.",
            tags=["syndgan", "dvc", "retrain"],
            triggers=[retrain_trigger(flows_cfg.retrain_event)],
            paused=False,  # serve pauses schedules on shutdown; a restart resumes them
            concurrency_limit=1,
            entrypoint_type=EntrypointType.MODULE_PATH,
            **schedule,
        ),
    ]
