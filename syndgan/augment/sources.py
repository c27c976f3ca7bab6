"""The processed dataset as augmentation and classification see it: train-only pools, k-shot
selection and the provenance check that keeps val/test images out of every synthetic image.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syndgan.errors import DataError, ImageError

NORMAL = "normal"
INDEX_COLUMNS = ("id", "label", "labels", "split", "group", "image", "labelmap")
MANIFEST_COLUMNS = {
    "id": "str",
    "label": "str",
    "labels": "str",
    "split": "str",
    "group": "str",
    "image": "str",
    "labelmap": "str",
    "normal_source": "str",
    "mask_source": "str",  # "|"-joined when several defects were composed
    "method": "str",
    "seed": "int64",
    "rank": "int64",  # position within its class: a dose of n takes ranks 0..n-1
    "transform": "str",  # JSON list, one placement record per defect
}


@dataclass
class ProcessedDataset:
    """``data/processed`` (rasterize output): index, class table and image readers."""

    root: Path
    index: pd.DataFrame
    classes: list[dict]  # [{"name", "id", "color"}], id = position + 1
    channels: int
    resolution: int

    @classmethod
    def load(cls, root: str | Path) -> ProcessedDataset:
        root = Path(root)
        index_path, info_path = root / "index.parquet", root / "dataset.json"
        for p in (index_path, info_path):
            if not p.is_file():
                raise DataError(p, "not found; run `dvc repro rasterize` first")
        index = pd.read_parquet(index_path)
        missing = [c for c in INDEX_COLUMNS if c not in index.columns]
        if missing:
            raise DataError(index_path, f"missing column(s) {', '.join(missing)}")
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            classes = sorted(info["classes"], key=lambda c: c["id"])
            channels, resolution = int(info["channels"]), int(info["resolution"])
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(info_path, f"unreadable dataset description: {e}") from None
        return cls(root, index.reset_index(drop=True), classes, channels, resolution)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def class_ids(self) -> dict[str, int]:
        return {c["name"]: int(c["id"]) for c in self.classes}

    @property
    def mode(self) -> str:
        return "L" if self.channels == 1 else "RGB"

    def read_image(self, rel: str) -> np.ndarray:
        return read_png(self.root / rel, self.mode)

    def read_labelmap(self, rel: str) -> np.ndarray:
        return read_png(self.root / rel, "L")

    def split(self, name: str) -> pd.DataFrame:
        return self.index[self.index["split"] == name]


def read_png(path: Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except OSError as e:
        raise ImageError(path, f"cannot read image: {e}") from None


def has_class(labels: str, name: str) -> bool:
    return name in str(labels).split("|")


def select_k_shot(train: pd.DataFrame, k: int | None, seed: int, classes: Sequence[str]) -> pd.DataFrame:
    """Keep every normal train image and ``k`` train images per defect class (drawn by ``seed``).

    ``k`` None keeps everything. Selection is by image label, from ids sorted first, so it depends only
    on the data, ``k`` and ``seed``: every method and every classifier seed sees the same k images.
    """
    if k is None:
        return train
    keep = [train[train["label"] == NORMAL]]
    for i, name in enumerate(classes):
        rows = train[train["label"] == name].sort_values("id")
        if len(rows) > k:
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1_000 + i]))
            rows = rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))]
        keep.append(rows)
    return pd.concat(keep).sort_index()


def train_pool(dataset: ProcessedDataset, k_shot: int | None = None, k_shot_seed: int = 0) -> pd.DataFrame:
    """The train split after k-shot reduction: the only images augmentation may draw from."""
    return select_k_shot(dataset.split("train"), k_shot, k_shot_seed, dataset.class_names)


def check_provenance(
    manifest: pd.DataFrame, allowed: pd.DataFrame, where: str | Path, index: pd.DataFrame | None = None
) -> None:
    """Every synthetic image must derive from ``allowed`` images only (the train pool).

    ``normal_source`` must be an allowed normal image, each ``mask_source`` an allowed image containing
    the row's class. Raises ``DataError(where, ...)`` naming the first offending row and source (and,
    given the full ``index``, the split it really is in).
    """
    if manifest.empty:
        return
    info = allowed.set_index("id")
    labels = info["label"].to_dict()
    multi = info["labels"].to_dict()
    splits = index.set_index("id")["split"].to_dict() if index is not None else {}

    def outside(src: str) -> str:
        if splits.get(src, "train") != "train":
            return f"in split {splits[src]!r}"
        return "not in the train pool (unknown id, or left out by k_shot)"

    for row in manifest.itertuples(index=False):
        if row.normal_source not in labels:
            raise DataError(where, f"row {row.id}: normal_source {row.normal_source!r} is {outside(row.normal_source)}")
        if labels[row.normal_source] != NORMAL:
            raise DataError(where, f"row {row.id}: normal_source {row.normal_source!r} is not a normal image")
        for src in _split_sources(row.mask_source):
            if src not in multi:
                raise DataError(where, f"row {row.id}: mask_source {src!r} is {outside(src)}")
            if not has_class(multi[src], row.label):
                raise DataError(where, f"row {row.id}: mask_source {src!r} has no {row.label!r} defect")


def _split_sources(value: str) -> Iterable[str]:
    return [s for s in str(value).split("|") if s]


def empty_manifest() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in MANIFEST_COLUMNS.items()})
