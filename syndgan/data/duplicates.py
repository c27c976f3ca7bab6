"""Duplicate inputs: which one ingest keeps, and the one-line rejection of every other.

Duplicates are two annotation files for one image, two images with one image id, or two images with
identical bytes (sha256). The one the previous manifest already holds is kept, so adding a file to a
folder that ingested cleanly never blames the files already there; otherwise (a first ingest, or none of
them ingested before) the first by image id, then by annotation file path. The message names both files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

from syndgan.data.checks import Checked, Item
from syndgan.data.records import ErrorHandler, handle
from syndgan.errors import DuplicateImageError

KEPT_BEFORE = "already ingested"
KEPT_FIRST = "first by image id, then annotation file"


def ingested(previous: pd.DataFrame | None) -> set[tuple[str, str]]:
    """(image id, absolute file) of every row of the previous manifest, for its annotation file and its image.

    Relative paths are taken from the working directory, where ``pipeline.ingest`` writes them."""
    if previous is None:
        return set()
    files = [c for c in ("annotation", "path") if c in previous.columns]  # older manifests: no annotation column
    return {(i, os.path.abspath(p)) for c in files for i, p in zip(previous["id"], previous[c], strict=True) if p}


def _kept_before(item: Item, known: set[tuple[str, str]]) -> bool:
    return (item.id, os.path.abspath(item.record.annotation_file or item.record.path)) in known


def drop_same_ids(items: Sequence[Item], known: set[tuple[str, str]], on_error: ErrorHandler | None) -> list[Item]:
    """One item per image id; rejected: later annotation files of the same image, other images with that id."""
    items = sorted(
        items, key=lambda it: (it.id, not _kept_before(it, known), str(it.record.annotation_file or it.record.path))
    )
    kept: list[Item] = []
    for it in items:
        prev = kept[-1] if kept else None
        if prev is None or prev.id != it.id:
            kept.append(it)
            continue
        why = KEPT_BEFORE if _kept_before(prev, known) else KEPT_FIRST
        if prev.record.path == it.record.path:
            problem = f"annotates the same image {it.rel!r} as {prev.record.annotation_file}, which is kept ({why})"
            handle(DuplicateImageError(it.record.annotation_file or it.record.path, problem), on_error)
        else:
            problem = f"same image id {it.id!r} as {prev.shown}, which is kept ({why}); rename one"
            handle(DuplicateImageError(it.shown, problem), on_error)
    return kept


def drop_same_bytes(
    checked: Sequence[Checked], known: set[tuple[str, str]], on_error: ErrorHandler | None
) -> list[Checked]:
    """One image per sha256, in the order of ``checked`` (image id order); the others are rejected."""
    keeper: dict[str, Checked] = {}
    for c in checked:
        first = keeper.get(c.row["sha256"])
        if first is None or (_kept_before(c.item, known) and not _kept_before(first.item, known)):
            keeper[c.row["sha256"]] = c
    unique = []
    for c in checked:
        kept = keeper[c.row["sha256"]]
        if kept is c:
            unique.append(c)
            continue
        why = KEPT_BEFORE if _kept_before(kept.item, known) else KEPT_FIRST
        problem = f"same image as {kept.item.shown} (identical sha256), which is kept ({why})"
        handle(DuplicateImageError(c.item.shown, problem), on_error)
    return unique
