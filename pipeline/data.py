"""Torch datasets over the pipeline's data contract, shared by the training stages.

- ``ProcessedDataset``: ``data/processed/index.parquet`` images (and optionally colour / label maps) at the
  working resolution, optionally resized again to a training resolution.
- ``PatchDataset``: random ``patch_size`` windows at *native* resolution from the original images listed in
  ``data/interim/manifest.parquet``; with probability ``defect_patch_prob`` a window is centred on a random
  point of one of the image's annotated defect regions (``annotations.parquet`` bboxes), so small defects
  are seen at full detail instead of being averaged away by a global resize.

Items are dicts: ``image`` float (C, R, R) in [-1, 1], ``label`` int (0 normal, k = class id), ``id``;
plus ``colormap`` (3, R, R) in [-1, 1] and ``labelmap`` (R, R) int64 for ``ProcessedDataset(with_maps=True)``
and ``window`` (x0, y0, size) in native pixels for ``PatchDataset``. Randomness (patch positions) comes from
torch's global RNG, which the trainers seed per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from syndgan.errors import DataError, ImageError

INDEX_COLUMNS = ("id", "label", "split", "image", "colormap", "labelmap")
MANIFEST_COLUMNS = ("id", "path", "width", "height", "label", "split")
BBOX_COLUMNS = ("image_id", "label", "x0", "y0", "x1", "y1")


def read_dataset_info(processed: str | Path) -> dict:
    path = Path(processed) / "dataset.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "not found (run the rasterize stage first)") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"invalid JSON: {e}") from None
    for key in ("resolution", "channels", "classes"):
        if key not in info:
            raise DataError(path, f"missing key '{key}'")
    if info["channels"] not in (1, 3):
        raise DataError(path, f"channels must be 1 or 3, got {info['channels']}")
    return info


def class_ids(classes: list[dict]) -> dict[str, int]:
    """Class name -> id (``dataset.json`` classes), with ``normal`` -> 0."""
    return {"normal": 0, **{c["name"]: int(c["id"]) for c in classes}}


def _read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
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


def _select_split(df: pd.DataFrame, split: str | list[str] | None, keep_ids=None) -> pd.DataFrame:
    if keep_ids is not None:  # the k-shot scarcity setting: only these images exist for training
        df = df[df["id"].isin(set(keep_ids))]
    if split is None:
        return df.reset_index(drop=True)
    splits = [split] if isinstance(split, str) else list(split)
    return df[df["split"].isin(splits)].reset_index(drop=True)


def k_shot_train_ids(processed: str | Path, k_shot: int | None, seed: int = 0) -> set[str] | None:
    """Ids of the train images kept by ``classify.k_shot`` (every normal, k per defect class); None: all.

    The scarcity setting holds for every stage that learns from train images (pretrain, train_synth,
    augment, classify), so nothing downstream has seen the defect images it leaves out.
    """
    if k_shot is None:
        return None
    from syndgan.augment.sources import select_k_shot

    processed = Path(processed)
    index = _read_table(processed / "index.parquet", INDEX_COLUMNS)
    names = [c["name"] for c in sorted(read_dataset_info(processed)["classes"], key=lambda c: c["id"])]
    return set(select_k_shot(index[index["split"] == "train"], k_shot, seed, names)["id"])


def _label_id(ids: dict[str, int], label: str, where: Path) -> int:
    if label not in ids:
        raise DataError(where, f"label '{label}' is not a class of dataset.json ({', '.join(ids)})")
    return ids[label]


def load_image(path: str | Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except FileNotFoundError:
        raise ImageError(path, "image file not found") from None
    except OSError as e:
        raise ImageError(path, f"cannot read image: {e}") from None


def to_unit_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 HxW or HxWxC -> float (C, H, W) in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float() / 127.5 - 1.0


class ProcessedDataset(Dataset):
    """Working-resolution images of one or more splits (``split=None``: all)."""

    def __init__(
        self,
        root: str | Path,
        split: str | list[str] | None = "train",
        resolution: int | None = None,
        with_maps: bool = False,
        cache: bool = True,
        keep_ids=None,
    ):
        self.root = Path(root)
        self.source = self.root / "index.parquet"
        self.info = read_dataset_info(self.root)
        self.channels = int(self.info["channels"])
        self.mode = "L" if self.channels == 1 else "RGB"
        self.resolution = resolution or int(self.info["resolution"])
        self.with_maps = with_maps
        self.ids = class_ids(self.info["classes"])
        self.index = _select_split(_read_table(self.source, INDEX_COLUMNS), split, keep_ids)
        self.labels = [_label_id(self.ids, lab, self.source) for lab in self.index["label"]]
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.index)

    def _resize(self, img: Image.Image, nearest: bool = False) -> Image.Image:
        if img.size == (self.resolution, self.resolution):
            return img
        resample = Image.Resampling.NEAREST if nearest else Image.Resampling.LANCZOS
        return img.resize((self.resolution, self.resolution), resample)

    def _load(self, i: int) -> dict:
        row = self.index.iloc[i]
        item = {
            "image": to_unit_tensor(self._resize(load_image(self.root / row["image"], self.mode))),
            "label": self.labels[i],
            "id": row["id"],
        }
        if self.with_maps:
            item["colormap"] = to_unit_tensor(self._resize(load_image(self.root / row["colormap"], "RGB"), True))
            lm = np.asarray(self._resize(load_image(self.root / row["labelmap"], "L"), True), dtype=np.int64)
            item["labelmap"] = torch.from_numpy(lm.copy())
        return item

    def __getitem__(self, i: int) -> dict:
        if self._cache is None:
            return self._load(i)
        if i not in self._cache:
            self._cache[i] = self._load(i)
        return dict(self._cache[i])


class PatchDataset(Dataset):
    """Native-resolution random windows from the manifest's original images (see module doc).

    Images smaller than ``patch_size`` on a side are first scaled up (aspect kept) to fit one window.
    Windows are resized to ``resolution`` (default ``patch_size``). ``label`` is the class of the defect
    a window was centred on, else of the first defect bbox it overlaps, else 0.
    """

    def __init__(
        self,
        manifest: str | Path,
        annotations: str | Path,
        classes: list[dict],
        split: str | list[str] | None = "train",
        patch_size: int = 128,
        resolution: int | None = None,
        channels: int = 3,
        defect_patch_prob: float = 0.5,
        cache: bool = True,
        keep_ids=None,
    ):
        if patch_size < 8:
            raise ValueError(f"patch_size must be >= 8, got {patch_size}")
        if not 0 <= defect_patch_prob <= 1:
            raise ValueError(f"defect_patch_prob must be in [0, 1], got {defect_patch_prob}")
        self.source = Path(manifest)
        self.patch_size, self.resolution = patch_size, resolution or patch_size
        self.channels, self.mode = channels, "L" if channels == 1 else "RGB"
        self.defect_patch_prob = defect_patch_prob
        self.ids = class_ids(classes)
        self.manifest = _select_split(_read_table(self.source, MANIFEST_COLUMNS), split, keep_ids)
        self.labels = [_label_id(self.ids, lab, self.source) for lab in self.manifest["label"]]
        ann = _read_table(Path(annotations), BBOX_COLUMNS)
        ann = ann[ann["image_id"].isin(set(self.manifest["id"]))]
        self.boxes: dict[str, list[tuple[int, float, float, float, float]]] = {}
        for a in ann.itertuples(index=False):
            cid = _label_id(self.ids, a.label, Path(annotations))
            self.boxes.setdefault(a.image_id, []).append((cid, float(a.x0), float(a.y0), float(a.x1), float(a.y1)))
        self._cache: dict[int, tuple[np.ndarray, float]] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.manifest)

    def _image(self, i: int) -> tuple[np.ndarray, float]:
        """Decoded image (scaled up when smaller than a window) and its scale factor from native pixels."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = load_image(self.manifest.iloc[i]["path"], self.mode)
        scale = max(1.0, self.patch_size / min(img.size))
        if scale > 1:
            size = (max(self.patch_size, round(img.width * scale)), max(self.patch_size, round(img.height * scale)))
            img = img.resize(size, Image.Resampling.BICUBIC)
        out = (np.asarray(img, dtype=np.uint8), scale)
        if self._cache is not None:
            self._cache[i] = out
        return out

    def _window(self, i: int, w: int, h: int, scale: float) -> tuple[int, int, int]:
        p = self.patch_size
        boxes = self.boxes.get(self.manifest.iloc[i]["id"], [])
        if boxes and float(torch.rand(())) < self.defect_patch_prob:
            cid, x0, y0, x1, y1 = boxes[int(torch.randint(len(boxes), ()))]
            cx = (x0 + float(torch.rand(())) * max(x1 - x0, 0.0)) * scale
            cy = (y0 + float(torch.rand(())) * max(y1 - y0, 0.0)) * scale
            wx = int(min(max(round(cx - p / 2), 0), w - p))
            wy = int(min(max(round(cy - p / 2), 0), h - p))
            return wx, wy, cid
        wx = int(torch.randint(w - p + 1, ()))
        wy = int(torch.randint(h - p + 1, ()))
        for cid, x0, y0, x1, y1 in boxes:  # overlap with a defect gives the window its class
            if x0 * scale < wx + p and x1 * scale > wx and y0 * scale < wy + p and y1 * scale > wy:
                return wx, wy, cid
        return wx, wy, 0

    def __getitem__(self, i: int) -> dict:
        arr, scale = self._image(i)
        h, w = arr.shape[:2]
        wx, wy, cid = self._window(i, w, h, scale)
        crop = Image.fromarray(arr[wy : wy + self.patch_size, wx : wx + self.patch_size])
        if self.resolution != self.patch_size:
            crop = crop.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)
        native = 1.0 / scale
        return {
            "image": to_unit_tensor(crop),
            "label": cid,
            "id": self.manifest.iloc[i]["id"],
            "window": torch.tensor([round(wx * native), round(wy * native), round(self.patch_size * native)]),
        }
