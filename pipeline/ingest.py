"""Stage `ingest`: the configured datasets (or the demo) -> ``manifest.parquet``, ``annotations.parquet``,
``ingest_report.json`` and ``extracted/`` (decoded masks, embedded images) in ``ingest.out``.
File paths in them are relative to the working directory (the project folder under DVC).

Nothing is written until every image was checked; then all artifacts are swapped in together, so a
failed run leaves the previous ones intact.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

import pandas as pd

from pipeline.common import stage_main
from pipeline.config import Params
from syndgan.data.ingest import SPLITS, IngestResult, Source, ingest
from syndgan.data.records import NORMAL
from syndgan.io import atomic_dir, atomic_path

log = logging.getLogger("syndgan.ingest")

DEMO_GROUP_PATTERN = r"^(part\d+)_"  # demo images are part####_<illumination>.png: one group per part


def sources_from_params(params: Params) -> list[Source]:
    """``ingest.sources``, or the demo dataset (LabelMe at ``demo.out``) when none are configured."""
    cfg = params.ingest
    if not cfg.sources:
        return [Source("labelme", params.resolve(params.demo.out), name="demo", group_pattern=DEMO_GROUP_PATTERN)]
    out = []
    for s in cfg.sources:
        root = Path(os.path.abspath(params.resolve(s.root)))  # normalised: the name is its last part
        out.append(
            Source(
                format=s.format,
                root=root,
                name=s.name or root.name,
                annotations=s.annotations,
                group_pattern=s.group_pattern,
                label_map=dict(s.label_map),
                images=os.path.abspath(params.resolve(s.images)) if s.images is not None else None,
                masks=os.path.abspath(params.resolve(s.masks)) if s.masks is not None else None,
                mask_suffix=s.mask_suffix,
                mask_values=dict(s.mask_values),
                unlabelled=s.unlabelled,
                split=s.split,
                synthetic=s.synthetic,
            )
        )
    return out


def portable(result: IngestResult, base: Path | None = None) -> IngestResult:
    """Store file paths relative to ``base`` (the stage's working directory, i.e. the project folder).

    Absolute paths would tie the DVC-cached manifest to the checkout that made it: its hash would differ
    between clones and a ``dvc pull`` elsewhere would point into someone else's folder.
    """
    base = Path(base or os.getcwd())

    def rel(p: str) -> str:
        return os.path.relpath(p, base) if p and os.path.isabs(p) else p

    result.manifest["path"] = result.manifest["path"].map(rel)
    result.manifest["annotation"] = result.manifest["annotation"].map(rel)
    result.annotations["mask_path"] = result.annotations["mask_path"].map(rel)
    for s in result.report["skipped"]:
        s["path"] = rel(s["path"])
    return result


def write_outputs(result: IngestResult, out: Path, extract_dir: Path) -> None:
    """Write all artifacts to temporary names first, then rename them into place together."""
    with contextlib.ExitStack() as stack:
        tmp_extract = stack.enter_context(atomic_dir(extract_dir))
        for path, data in result.files.items():
            target = tmp_extract / Path(path).relative_to(extract_dir)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        result.manifest.to_parquet(stack.enter_context(atomic_path(out / "manifest.parquet")), index=False)
        result.annotations.to_parquet(stack.enter_context(atomic_path(out / "annotations.parquet")), index=False)
        report = json.dumps(result.report, indent=2, sort_keys=True) + "\n"
        stack.enter_context(atomic_path(out / "ingest_report.json")).write_text(report, encoding="utf-8")
    # leaving the stack renames every temporary onto its final name (only when nothing above failed)


def log_counts(result: IngestResult, classes: list[str]) -> None:
    by = result.report["counts"]["by_split_label"]
    width = max(len(c) for c in [NORMAL, *classes, "class"])
    log.info("%-*s %7s %7s %7s %7s", width, "class", *SPLITS, "total")
    for label in [NORMAL, *classes]:
        n = [by[s][label] for s in SPLITS]
        log.info("%-*s %7d %7d %7d %7d", width, label, *n, sum(n))
    counts = result.report["counts"]
    log.info(
        "%d images (%d groups), %d regions, %d skipped",
        counts["images"],
        counts["groups"],
        counts["regions"],
        counts["skipped"],
    )
    unlabelled = counts["unlabelled"]
    if unlabelled["normal"] or unlabelled["ignored"]:
        log.info("unlabelled images: %d taken as normal, %d ignored", unlabelled["normal"], unlabelled["ignored"])


def previous_manifest(path: Path) -> pd.DataFrame | None:
    """The manifest of the last successful run: of duplicate inputs, ingest keeps the file it holds."""
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:  # unreadable: judge duplicates as on a first ingest
        log.warning("%s: not readable (%s); duplicates are judged as on a first ingest", path, e)
        return None


def run(params: Params) -> IngestResult:
    cfg = params.ingest
    out = params.resolve(cfg.out)
    extract_dir = out / "extracted"
    classes = list(cfg.classes)
    result = ingest(
        sources_from_params(params),
        classes,
        split=(cfg.split.train, cfg.split.val, cfg.split.test),
        seed=cfg.seed,
        on_error=cfg.on_error,
        max_pixels=cfg.max_pixels,
        multi_label=cfg.multi_label,
        extract_dir=extract_dir,
        progress=True,
        previous=previous_manifest(out / "manifest.parquet"),
    )
    write_outputs(portable(result), out, extract_dir)
    log_counts(result, classes)
    for s in result.report["skipped"]:
        log.warning("skipped %s: %s", s["path"], s["problem"])
    log.info("wrote %s", out)
    return result


def outputs(params: Params) -> list[Path]:
    out = params.resolve(params.ingest.out)
    return [out / "manifest.parquet", out / "annotations.parquet", out / "ingest_report.json", out / "extracted"]


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", run, argv, __doc__, outputs=outputs)


if __name__ == "__main__":
    raise SystemExit(main())
