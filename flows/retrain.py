"""``retrain-on-new-defects``: when annotation files or images under the sources changed, rerun the pipeline
from ``ingest`` (``flows.retrain_from``) downstream; otherwise finish at once as a no-op, starting no stage.

"Changed" means: different from what was last built. For sources the entry stage depends on, that is what
``dvc.lock`` recorded (so an unchanged fresh clone, with no watch state, does nothing). For sources outside
DVC's view it is the watch state (``flows.state``), written only after every stage succeeded. Both advance
only on success, so a failed run (a malformed annotation, say) is retried on the next trigger, and fixing or
removing the bad file is enough.
A detected change is also announced as a Prefect event, ``syndgan.sources.changed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.recovery import recover, recovery_hook
from flows.stages import load_project_params, project_lock, project_root, publish_metrics, run_stages
from pipeline.tools.dvcgraph import load_graph
from pipeline.tools.watch import diff, load_state, lock_changes, save_state, scan, watch_roots, within

CHANGED_EVENT = "syndgan.sources.changed"


def _relative(paths: list[str], root: Path) -> list[str]:
    out = []
    for p in paths:
        try:
            out.append(Path(p).relative_to(root).as_posix())
        except ValueError:
            out.append(p)
    return out


# a cancel or crash restores a half-run stage at once (and the next run would too)
@flow(
    name="retrain-on-new-defects",
    persist_result=False,
    log_prints=True,
    on_cancellation=[recovery_hook],
    on_crashed=[recovery_hook],
)
def retrain_on_new_defects(project_dir: str | None = None, retries: int | None = None) -> dict[str, Any]:
    """Rerun ingest and everything downstream when the watched sources changed since the last success."""
    logger = get_run_logger()
    root = project_root(project_dir)
    params = load_project_params(root)
    cfg = params.flows
    with project_lock(root, logger):
        recover(root, logger)
        roots = watch_roots(params, root)
        graph = load_graph(root)
        entry = graph.select(cfg.retrain_from)
        # Roots an entry stage depends on are judged by dvc.lock (what was last built, known in a fresh clone
        # too); the others, outside DVC's view, by the watch state of the last successful run.
        tracked = [r for r in roots if any(graph.depends_on_any(name, [r]) for name in entry)]
        untracked = [r for r in roots if r not in tracked]
        state_path = root / cfg.state
        previous = load_state(state_path)
        current = scan(roots, cfg.watch_suffixes, previous)
        in_lock = lock_changes(root, entry, tracked) if tracked else {}
        changed_roots = untracked + (tracked if in_lock else [])
        changes = diff(within(previous, changed_roots), within(current, changed_roots))
        shown = ", ".join(_relative([str(r) for r in roots], root))
        if not changes and not in_lock:
            if previous != current:  # tracked files equal to dvc.lock: this is the state as last built
                save_state(state_path, current, roots)
            logger.info("sources under %s are as last built (dvc.lock, watch state): nothing to do", shown)
            return {"changed": False, "watched": len(current)}

        logger.info("%s under %s since the last successful run", changes, shown)
        if in_lock:
            logger.info("differ from dvc.lock: %s", ", ".join(f"{p} ({how})" for p, how in sorted(in_lock.items())))
        if in_lock and not within(previous, tracked):
            logger.info("no watch state yet for %s: its files count as added", shown)
        for kind in ("added", "modified", "removed"):
            for path in _relative(getattr(changes, kind), root)[:20]:
                logger.info("  %s: %s", kind, path)
        summary = {k: {**v, "paths": _relative(v["paths"], root)} for k, v in changes.summary().items()}
        emit_event(
            event=CHANGED_EVENT,
            resource={"prefect.resource.id": f"syndgan.project.{root.name}", "prefect.resource.name": root.name},
            payload={"project": str(root), "watched": _relative([str(r) for r in roots], root), **summary},
        )

        names = graph.downstream_of([cfg.retrain_from])
        # Sources outside DVC's view (an absolute root that no stage lists as a dependency) change without
        # DVC noticing: then the entry stage must be forced; when dvc.lock differs DVC reruns it by itself.
        force_entry = not in_lock
        if force_entry:
            logger.info("no stage declares the changed files as dependencies: forcing %s", ", ".join(entry))
        results = run_stages(
            root,
            graph,
            names,
            force=entry if force_entry else False,
            retries=cfg.retries if retries is None else retries,
            retry_delay_seconds=cfg.retry_delay_seconds,
            pull=cfg.dvc_pull,
            push=cfg.dvc_push,
        )
        metrics = publish_metrics(root, graph, results)
        save_state(state_path, current, roots)
        logger.info("watch state saved: %d file(s) in %s", len(current), _relative([str(state_path)], root)[0])
    return {"changed": True, "changes": summary, "stages": results, "metrics": metrics}


if __name__ == "__main__":
    retrain_on_new_defects()
