"""The processed-data contract (``data/processed``, written by the rasterize stage), owned here alone.

``index.parquet`` (``INDEX_COLUMNS``, one row per image) and ``dataset.json`` (resolution, channels,
classes with ids 1..K and colours, counts), the images/colormaps/labelmaps they point to, the one rule
that resizes a label map (area coverage that keeps tiny defects: training and inference must agree), and
the train pool left by the k-shot scarcity setting. Training, augmentation, classification, evaluation
and the report all read the dataset through this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from syndgan.errors import DataError, ImageError

NORMAL = "normal"
# ``labels`` is the "|"-joined set of defect classes of an image ("" for normal ones); ``label`` its main one.
INDEX_COLUMNS = ("id", "label", "labels", "split", "group", "image", "colormap", "labelmap")
INFO_KEYS = ("resolution", "channels", "classes")


def read_dataset_info(root: str | Path) -> dict:
    """``dataset.json`` checked for the keys every reader needs."""
    path = Path(root) / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "not found (run the rasterize stage first)") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e}") from None
    missing = [k for k in INFO_KEYS if k not in info]
    if missing:
        raise DataError(path, f"missing key(s) {', '.join(missing)}")
    if info["channels"] not in (1, 3):
        raise DataError(path, f"channels must be 1 or 3, got {info['channels']}")
    return info


def read_table(path: str | Path, columns) -> pd.DataFrame:
    """A parquet table that must hold ``columns`` (extra columns are kept)."""
    path = Path(path)
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise DataError(path, "not found") from None
    except Exception as e:
        raise DataError(path, f"unreadable parquet ({type(e).__name__}: {e})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(path, f"missing column(s) {', '.join(missing)}")
    return df


def class_ids(classes: list[dict]) -> dict[str, int]:
    """Class name -> id (``dataset.json`` classes), with ``normal`` -> 0."""
    return {NORMAL: 0, **{c["name"]: int(c["id"]) for c in classes}}


def read_png(path: str | Path, mode: str) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise ImageError(path, "image file not found") from None
    except OSError as e:
        raise ImageError(path, f"cannot read image: {e}") from None


@dataclass
class ProcessedDataset:
    """``data/processed``: the index, the class table and readers of its images and maps."""

    root: Path
    index: pd.DataFrame
    classes: list[dict]  # [{"name", "id", "color"}], sorted by id (1..K)
    channels: int
    resolution: int
    k_shot: int | None = None  # the train pool rasterize decided (dataset.json; absent: every train image)
    k_shot_seed: int = 0

    @classmethod
    def load(cls, root: str | Path) -> ProcessedDataset:
        root = Path(root)
        info = read_dataset_info(root)
        index = read_table(root / "index.parquet", INDEX_COLUMNS)
        try:
            classes = sorted(info["classes"], key=lambda c: c["id"])
            channels, resolution = int(info["channels"]), int(info["resolution"])
            k_shot = None if info.get("k_shot") is None else int(info["k_shot"])
            k_shot_seed = int(info.get("k_shot_seed", 0))
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(root / "dataset.json", f"unreadable dataset description: {e}") from None
        return cls(root, index.reset_index(drop=True), classes, channels, resolution, k_shot, k_shot_seed)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    @property
    def class_ids(self) -> dict[str, int]:
        """Defect class name -> id (no ``normal``; see the module's ``class_ids`` for that)."""
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


def has_class(labels: str, name: str) -> bool:
    return name in str(labels).split("|")


# --------------------------------------------------------------------------- the train pool (k-shot)


def select_k_shot(train: pd.DataFrame, k: int | None, seed: int, classes) -> pd.DataFrame:
    """Keep every normal train image and ``k`` train images per defect class (drawn by ``seed``).

    ``k`` None keeps everything. Selection is by image label, from ids sorted first, so it depends only
    on the data, ``k`` and ``seed``: every stage, method and classifier seed sees the same k images.
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


def train_pool(dataset: ProcessedDataset) -> pd.DataFrame:
    """The train split after the k-shot reduction rasterize recorded: the only images any stage may learn
    or draw from (pretrain, train_synth, augment, classify, evaluate's real-vs-real floor, the report)."""
    return select_k_shot(dataset.split("train"), dataset.k_shot, dataset.k_shot_seed, dataset.class_names)


def train_pool_ids(root: str | Path) -> set[str] | None:
    """Ids of ``train_pool`` for the dataset at ``root``; None when it keeps every train image."""
    dataset = ProcessedDataset.load(root)
    return None if dataset.k_shot is None else set(train_pool(dataset)["id"])


# --------------------------------------------------------------------------- label-map resizing


def downsample_labels(labels: np.ndarray, size: int, coverage: float = 0.5) -> np.ndarray:
    """Square label map of side ``size`` by area coverage; a class that would vanish keeps its best pixel."""
    if labels.shape == (size, size):
        return labels.copy()
    out = np.zeros((size, size), np.uint8)
    best = np.zeros((size, size), np.float32)
    for k in np.unique(labels):
        if k == 0:
            continue
        img = Image.fromarray((labels == k).astype(np.float32), mode="F")
        resample = Image.Resampling.BOX if labels.shape[0] >= size else Image.Resampling.NEAREST
        cov = np.asarray(img.resize((size, size), resample), dtype=np.float32)
        take = (cov >= coverage) & (cov >= best)
        out[take] = k
        best = np.maximum(best, np.where(take, cov, 0))
        if not (out == k).any() and cov.max() > 0:
            y, x = np.unravel_index(int(np.argmax(cov)), cov.shape)
            out[y, x] = k
    return out


def resize_labels(labels: np.ndarray, size: int) -> np.ndarray:
    """Any label map -> (size, size) by coverage: the one rule for training and inference alike."""
    h, w = labels.shape
    if (h, w) == (size, size):
        return labels.copy()
    if h != w:  # stretch to a square first (nearest keeps ids), then cover-downsample
        side = max(h, w)
        labels = np.asarray(Image.fromarray(labels).resize((side, side), Image.Resampling.NEAREST))
    return downsample_labels(labels, size)
