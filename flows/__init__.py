"""Prefect orchestration of the DVC pipeline.

- ``flows.reproduce``: one Prefect task per DVC stage, in the order DVC derives from ``dvc.yaml``.
- ``flows.retrain``: re-runs ``ingest`` and everything downstream when source files change.
- ``flows.serve``: local Prefect server (database in the project) + the deployments; ``flows.ui_check``.

DVC stays the single cache of record: tasks never cache or persist results, every stage runs through
``dvc repro``. This package imports ``prefect`` only in its submodules, so ``flows.server`` can set the
server address in the environment before Prefect reads its settings.
"""
