"""Torch datasets over the data contract, shared by the training stages (pretrain, train_synth).

- ``ProcessedImages``: ``data/processed`` images (and optionally colour / label maps) at the working
  resolution, optionally resized again to a training resolution; label maps by the coverage rule of
  ``syndgan.data.processed.resize_labels`` (the one ``Synthesizer`` uses at inference).
- ``PatchDataset``: random ``patch_size`` windows at *native* resolution from the original images listed in
  ``data/interim/manifest.parquet``; with probability ``defect_patch_prob`` a window is centred on a random
  point of one of the image's annotated defect regions (``annotations.parquet`` bboxes), so small defects
  are seen at full detail instead of being averaged away by a global resize.
- ``SynthPatchDataset``: ``PatchDataset`` windows plus their label maps, for train_synth's patch mode.

Items are dicts: ``image`` float (C, R, R) in [-1, 1], ``label`` int (0 normal, k = class id), ``id``;
plus ``colormap`` (3, R, R) in [-1, 1] and ``labelmap`` (R, R) int64 for ``ProcessedImages(with_maps=True)``,
``window`` (x0, y0, size) in native pixels for ``PatchDataset`` and ``labelmap`` for ``SynthPatchDataset``.
Randomness (patch positions) comes from torch's global RNG, which the trainers seed per step.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from syndgan.data.processed import ProcessedDataset, class_ids, read_png, read_table, resize_labels
from syndgan.data.rasterize import Region, colorize, rasterize_labelmap
from syndgan.errors import DataError

# The columns these readers use of ingest's tables (syndgan.data.ingest.MANIFEST_COLUMNS / ANNOTATION_COLUMNS).
MANIFEST_USED = ("id", "path", "width", "height", "label", "split")
BBOX_USED = ("image_id", "label", "x0", "y0", "x1", "y1")
REGION_USED = (*BBOX_USED, "shape", "points", "mask_path", "mask_threshold")


def _select(df, split: str | list[str] | None, keep_ids=None):
    if keep_ids is not None:  # the k-shot scarcity setting: only these images exist for training
        df = df[df["id"].isin(set(keep_ids))]
    if split is None:
        return df.reset_index(drop=True)
    splits = [split] if isinstance(split, str) else list(split)
    return df[df["split"].isin(splits)].reset_index(drop=True)


def _label_id(ids: dict[str, int], label: str, where: Path) -> int:
    if label not in ids:
        raise DataError(where, f"label '{label}' is not a class of dataset.json ({', '.join(ids)})")
    return ids[label]


def to_unit_tensor(img: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 HxW or HxWxC -> float (C, H, W) in [-1, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()).float() / 127.5 - 1.0


class ProcessedImages(Dataset):
    """Working-resolution images of one or more splits (``split=None``: all; ``keep_ids``: the train pool)."""

    def __init__(
        self,
        root: str | Path,
        split: str | list[str] | None = "train",
        resolution: int | None = None,
        with_maps: bool = False,
        cache: bool = True,
        keep_ids=None,
    ):
        self.data = ProcessedDataset.load(root)
        self.root, self.source = self.data.root, self.data.root / "index.parquet"
        self.channels, self.mode = self.data.channels, self.data.mode
        self.resolution = resolution or self.data.resolution
        self.with_maps = with_maps
        self.ids = class_ids(self.data.classes)
        self.palette = {int(c["id"]): c["color"] for c in self.data.classes}
        self.index = _select(self.data.index, split, keep_ids)
        self.labels = [_label_id(self.ids, lab, self.source) for lab in self.index["label"]]
        self._cache: dict[int, dict] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.index)

    def _image(self, rel: str) -> Image.Image:
        img = Image.fromarray(self.data.read_image(rel))
        if img.size == (self.resolution, self.resolution):
            return img
        return img.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)

    def _load(self, i: int) -> dict:
        row = self.index.iloc[i]
        item = {"image": to_unit_tensor(self._image(row["image"])), "label": self.labels[i], "id": row["id"]}
        if self.with_maps:
            lm = self.data.read_labelmap(row["labelmap"])
            if lm.shape == (self.resolution, self.resolution):
                cm = read_png(self.root / row["colormap"], "RGB")
            else:  # coverage keeps a 1 px defect that nearest would drop; the colours follow the labels
                lm = resize_labels(lm, self.resolution)
                cm = colorize(lm, self.palette)
            item["colormap"] = to_unit_tensor(cm)
            item["labelmap"] = torch.from_numpy(lm.astype(np.int64))
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
        self.manifest = _select(read_table(self.source, MANIFEST_USED), split, keep_ids)
        self.labels = [_label_id(self.ids, lab, self.source) for lab in self.manifest["label"]]
        ann = read_table(Path(annotations), self._annotation_columns)
        self.annotations = ann[ann["image_id"].isin(set(self.manifest["id"]))]
        self.boxes: dict[str, list[tuple[int, float, float, float, float]]] = {}
        for a in self.annotations.itertuples(index=False):
            cid = _label_id(self.ids, a.label, Path(annotations))
            self.boxes.setdefault(a.image_id, []).append((cid, float(a.x0), float(a.y0), float(a.x1), float(a.y1)))
        self._cache: dict[int, tuple[np.ndarray, float]] | None = {} if cache else None

    _annotation_columns = BBOX_USED

    def __len__(self) -> int:
        return len(self.manifest)

    def _image(self, i: int) -> tuple[np.ndarray, float]:
        """Decoded image (scaled up when smaller than a window) and its scale factor from native pixels."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        img = Image.fromarray(read_png(self.manifest.iloc[i]["path"], self.mode))
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


class SynthPatchDataset(PatchDataset):
    """``PatchDataset`` windows plus their native-resolution label maps (``labelmap``, coverage-resized).

    ``label`` is the class covering most of the window's label map (0 when it shows no defect).
    """

    _annotation_columns = REGION_USED

    def __init__(self, manifest, annotations, classes, **kwargs):
        super().__init__(manifest, annotations, classes, **kwargs)
        self.regions: dict[str, list[Region]] = {}
        for a in self.annotations.itertuples(index=False):
            self.regions.setdefault(a.image_id, []).append(
                Region(
                    class_id=self.ids[a.label],
                    polygon=json.loads(a.points) if a.shape == "polygon" else None,
                    mask_path=a.mask_path if a.shape == "mask" else None,
                    mask_threshold=int(a.mask_threshold),
                )
            )
        self._maps: dict[int, np.ndarray] = {}

    def _labels(self, i: int, shape: tuple[int, int]) -> np.ndarray:
        if i not in self._maps:
            row = self.manifest.iloc[i]
            lm = rasterize_labelmap(self.regions.get(row["id"], []), int(row["width"]), int(row["height"]))
            if lm.shape != shape:  # PatchDataset scaled a small image up
                lm = np.asarray(Image.fromarray(lm).resize(shape[::-1], Image.Resampling.NEAREST))
            self._maps[i] = lm
        return self._maps[i]

    def __getitem__(self, i: int) -> dict:
        arr, scale = self._image(i)
        h, w = arr.shape[:2]
        wx, wy, _ = self._window(i, w, h, scale)
        p = self.patch_size
        crop = Image.fromarray(arr[wy : wy + p, wx : wx + p])
        labels = self._labels(i, (h, w))[wy : wy + p, wx : wx + p]
        if self.resolution != p:
            crop = crop.resize((self.resolution, self.resolution), Image.Resampling.LANCZOS)
            labels = resize_labels(labels, self.resolution)
        counts = np.bincount(labels.ravel(), minlength=2)
        counts[0] = 0
        return {
            "image": to_unit_tensor(crop),
            "labelmap": torch.from_numpy(labels.astype(np.int64)),
            "label": int(counts.argmax()) if counts.any() else 0,
            "id": self.manifest.iloc[i]["id"],
        }
