"""Classifier inputs: real train/val/test images and a dose of synthetic train images, as uint8 tensors.

Images are squashed once to the classifier resolution (bilinear, anti-aliased) and kept in memory
(N, 3, R, R); grayscale images are replicated to 3 channels for the ImageNet network. Real images come
from their source files when ``native`` paths are given (one resampling, as a plain fine-tune would do),
else from the processed dataset. Class index 0 is "normal", k is defect class k.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from syndgan.data.processed import NORMAL, ProcessedDataset, read_png, train_pool
from syndgan.errors import ConfigError, DataError


@dataclass
class ImageSet:
    ids: list[str]
    x: torch.Tensor  # uint8 (N, 3, R, R)
    y: torch.Tensor  # int64 (N,)
    synthetic: torch.Tensor  # bool (N,)

    def __len__(self) -> int:
        return len(self.ids)

    def counts(self, num_classes: int) -> list[int]:
        return torch.bincount(self.y, minlength=num_classes).tolist()

    def __add__(self, other: ImageSet) -> ImageSet:
        return ImageSet(
            self.ids + other.ids,
            torch.cat([self.x, other.x]),
            torch.cat([self.y, other.y]),
            torch.cat([self.synthetic, other.synthetic]),
        )


@dataclass
class RealSplits:
    class_names: list[str]  # ["normal", *defect classes]
    train: ImageSet
    val: ImageSet
    test: ImageSet


def load_images(root: Path, rel_paths: Sequence[str], resolution: int) -> torch.Tensor:
    """uint8 (N, 3, R, R); squashed to R x R (bilinear, anti-aliased), gray replicated to RGB."""
    out = np.zeros((len(rel_paths), resolution, resolution, 3), np.uint8)
    for i, rel in enumerate(rel_paths):
        img = Image.fromarray(read_png(Path(root) / rel, "RGB"))
        if img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.Resampling.BILINEAR)
        out[i] = np.asarray(img)
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


def label_indices(labels: Sequence[str], class_names: Sequence[str], where: str | Path) -> torch.Tensor:
    lookup = {name: i for i, name in enumerate(class_names)}
    unknown = sorted(set(labels) - set(lookup))
    if unknown:
        raise DataError(where, f"label {unknown[0]!r} is not a class ({', '.join(class_names)})")
    return torch.tensor([lookup[v] for v in labels], dtype=torch.int64)


def image_set(
    root: Path,
    rows: pd.DataFrame,
    class_names: Sequence[str],
    resolution: int,
    synthetic: bool,
    where,
    native: Mapping[str, str | Path] | None = None,
):
    rows = rows.sort_values("id") if not synthetic else rows
    if native is not None:
        missing = sorted(set(rows["id"]) - set(native))
        if missing:
            raise DataError(where, f"image {missing[0]!r} has no source file in the ingest manifest")
        root, paths = Path("."), [str(native[i]) for i in rows["id"]]
    else:
        paths = list(rows["image"])
    return ImageSet(
        list(rows["id"]),
        load_images(root, paths, resolution),
        label_indices(list(rows["label"]), class_names, where),
        torch.full((len(rows),), synthetic, dtype=torch.bool),
    )


def load_real(
    dataset: ProcessedDataset,
    resolution: int,
    native: Mapping[str, str | Path] | None = None,
) -> RealSplits:
    """Train (the train pool, after k-shot), val and test images of the processed dataset; ``native`` maps image ids to
    their source files (the ingest manifest's paths) to read the originals instead of the processed copies."""
    names = [NORMAL, *dataset.class_names]
    where = dataset.root / "index.parquet"
    train = train_pool(dataset)
    sets = {
        "train": image_set(dataset.root, train, names, resolution, False, where, native),
        "val": image_set(dataset.root, dataset.split("val"), names, resolution, False, where, native),
        "test": image_set(dataset.root, dataset.split("test"), names, resolution, False, where, native),
    }
    for split in ("train", "test"):
        if not len(sets[split]):
            raise DataError(where, f"no {split} images")
    if not len(sets["val"]):
        raise DataError(where, "no val images: model selection needs a val split (ingest.split.val > 0)")
    return RealSplits(names, **sets)


def select_dose(manifest: pd.DataFrame, dose: int | str, class_names: Sequence[str], where: str | Path):
    """The first ``dose`` synthetic images (by rank) of every defect class; ``"all"``: the whole manifest."""
    if dose == "all":
        return manifest
    parts = []
    for name in class_names:
        rows = manifest[manifest["label"] == name].sort_values("rank")
        if len(rows) < int(dose):
            raise ConfigError(
                f"classify.doses: dose {dose} needs {dose} synthetic {name!r} images, {where} has {len(rows)}; "
                "raise augment.targets"
            )
        parts.append(rows.head(int(dose)))
    return pd.concat(parts) if parts else manifest.head(0)


def load_synthetic(root: Path, manifest: pd.DataFrame, class_names: Sequence[str], resolution: int) -> ImageSet:
    return image_set(root, manifest, class_names, resolution, True, Path(root) / "manifest.parquet")
