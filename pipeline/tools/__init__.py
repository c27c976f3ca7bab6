"""Commands and helpers around the pipeline that are not DVC stages and that no stage imports.

``cli`` (the ``syndgan`` command) and ``studio`` (its web app), ``run`` (the pipeline with another params file in
a work folder of its own), ``watch`` and ``dvcgraph`` (what the Prefect flows read: source changes, DVC's stage
graph), ``codedeps`` (dvc.yaml's generated parts: each stage's code deps, the augment foreach; ``make repro`` runs
it first), ``plots_page`` (``make plots``) and ``defaults`` (params.yaml values that differ from their defaults).
"""
