"""Paint defects into normal images: ``Synthesizer.from_checkpoint(path).synthesize(image, mask) -> image``.

``image``: a PIL image (mode "L" or "RGB") or a uint8 array (H, W), (H, W, 1) or (H, W, 3), any size.
``mask``: same height and width; either a label map (PIL "L" or a uint8 (H, W) array: 0 background, k = class
id as in the checkpoint's ``classes``), or a class-coloured map (PIL "RGB" or (H, W, 3) uint8: black
background, each class its colour; an RGB image whose channels are all equal is read as a label map).
A bool (H, W) array or PIL "1" mask is accepted when the model has a single class.

The result has the input's type, mode, shape and size. With blending (default) only a feathered band
around the mask changes: pixels farther than ``dilate + feather`` (native px) from the mask equal the
input exactly. Inference is deterministic (constant noise).

How a window is chosen depends on how the model was trained (stored in the checkpoint):

- ``resize``: the whole image is resized to the network resolution R, synthesized, and the result resized
  back (aspect ratio is not kept, as in the rasterize stage).
- ``patch``: each group of defects gets a square window of ``patch_size`` native pixels (larger when the
  defects do not fit) around it, resized to R; the result is resized back and blended into the full
  image, so images of any size (e.g. 2440 x 2040) are processed at native detail.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from syndgan.data.processed import downsample_labels, resize_labels
from syndgan.errors import SyndganError


class SynthesisInputError(SyndganError, ValueError):
    """An image or mask given to ``Synthesizer.synthesize`` that cannot be used (one-line message)."""


@dataclass
class Window:
    x0: int
    y0: int
    size: int


def _as_array(image: Any, what: str) -> tuple[np.ndarray, str | None]:
    """-> (H, W, C) uint8 array and the PIL mode it came from (None for arrays)."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            raise SynthesisInputError(f"{what}: PIL mode {image.mode!r} not supported; convert to 'L' or 'RGB'")
        arr = np.asarray(image, dtype=np.uint8)
        return (arr[:, :, None] if arr.ndim == 2 else arr), image.mode
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise SynthesisInputError(f"{what}: expected a uint8 array, got {image.dtype}")
        if image.ndim == 2:
            return image[:, :, None], None
        if image.ndim == 3 and image.shape[2] in (1, 3):
            return image, None
        raise SynthesisInputError(f"{what}: expected shape (H, W), (H, W, 1) or (H, W, 3), got {image.shape}")
    raise SynthesisInputError(f"{what}: expected a PIL image or a uint8 numpy array, got {type(image).__name__}")


def mask_to_labelmap(mask: Any, classes: list[dict], size: tuple[int, int]) -> np.ndarray:
    """Label map (H, W) uint8 from any accepted mask form; ``size`` is the image's (W, H)."""
    k = len(classes)
    if isinstance(mask, Image.Image):
        if mask.mode == "1":
            mask = np.asarray(mask, dtype=bool)
        elif mask.mode == "P":
            mask = np.asarray(mask.convert("RGB"), dtype=np.uint8)
        elif mask.mode in ("L", "RGB"):
            mask = np.asarray(mask, dtype=np.uint8)
        else:
            raise SynthesisInputError(f"mask: PIL mode {mask.mode!r} not supported (label map 'L' or colour map 'RGB')")
    if not isinstance(mask, np.ndarray):
        raise SynthesisInputError(f"mask: expected a PIL image or a numpy array, got {type(mask).__name__}")
    if mask.shape[:2] != (size[1], size[0]):
        raise SynthesisInputError(
            f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is {size[0]}x{size[1]} (width x height)"
        )
    if mask.dtype == bool:
        if mask.ndim != 2:
            raise SynthesisInputError(f"mask: a boolean mask must be (H, W), got {mask.shape}")
        if k != 1 and mask.any():
            raise SynthesisInputError(
                f"mask: a binary mask does not say which of the {k} classes to paint; give a label map or a colour map"
            )
        return mask.astype(np.uint8)
    if mask.dtype != np.uint8:
        raise SynthesisInputError(f"mask: expected uint8 values, got {mask.dtype}")
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim == 3 and mask.shape[2] == 3 and (mask == mask[:, :, :1]).all():
        mask = mask[:, :, 0]  # a label map saved as RGB
    if mask.ndim == 2:
        top = int(mask.max()) if mask.size else 0
        if top > k:
            raise SynthesisInputError(f"mask: label value {top} but the model knows class ids 1..{k}")
        return np.ascontiguousarray(mask)
    if mask.ndim != 3 or mask.shape[2] != 3:
        raise SynthesisInputError(f"mask: expected (H, W) labels or (H, W, 3) colours, got shape {mask.shape}")
    labels = np.zeros(mask.shape[:2], np.uint8)
    known = np.zeros(mask.shape[:2], bool)
    known |= (mask == 0).all(axis=2)
    for c in classes:
        hit = (mask == np.asarray(c["color"], np.uint8)).all(axis=2)
        labels[hit] = int(c["id"])
        known |= hit
    if not known.all():
        y, x = np.argwhere(~known)[0]
        colours = ", ".join(f"{c['name']}={tuple(c['color'])}" for c in classes)
        raise SynthesisInputError(
            f"mask: colour {tuple(int(v) for v in mask[y, x])} at ({x}, {y}) is no class colour ({colours}; black = background)"
        )
    return labels


def feather_alpha(labels: np.ndarray, dilate: int, feather: int) -> np.ndarray:
    """Blend weight (H, W) float32: 1 on the mask dilated by ``dilate`` px, ramping to exactly 0 over ``feather`` px."""
    from scipy.ndimage import distance_transform_edt

    mask = labels > 0
    if not mask.any():
        return np.zeros(labels.shape, np.float32)
    dist = distance_transform_edt(~mask)
    ramp = (dist - dilate) / max(feather, 1)
    alpha = np.clip(1.0 - ramp, 0.0, 1.0).astype(np.float32)
    alpha[dist > dilate + max(feather, 0)] = 0.0
    return alpha


def defect_windows(labels: np.ndarray, patch: int, margin: int) -> list[tuple[Window, np.ndarray]]:
    """Square windows (native px) around groups of defect components, each with the components it paints.

    A window is ``patch`` px (larger when a component plus ``margin`` does not fit), centred on the
    component; later components already inside an earlier window are painted by that window.
    """
    from scipy.ndimage import find_objects, label

    comp, n = label(labels > 0, structure=np.ones((3, 3)))
    h, w = labels.shape
    out: list[tuple[Window, np.ndarray]] = []
    done = np.zeros(n + 1, bool)
    for i, sl in enumerate(find_objects(comp), start=1):
        if done[i] or sl is None:
            continue
        y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        size = max(patch, y1 - y0 + 2 * margin, x1 - x0 + 2 * margin)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        wx = int(round(cx - size / 2))
        wy = int(round(cy - size / 2))
        # Keep the window inside the image where it fits (training windows never leave the image).
        wx = min(max(wx, 0), max(w - size, 0)) if size <= w else int(round(cx - size / 2))
        wy = min(max(wy, 0), max(h - size, 0)) if size <= h else int(round(cy - size / 2))
        inside = np.unique(comp[max(wy, 0) : wy + size, max(wx, 0) : wx + size])
        members = []
        for j in inside:
            if j == 0 or done[j]:
                continue
            sj = find_objects((comp == j).astype(np.int32))[0]
            if sj[0].start >= wy and sj[0].stop <= wy + size and sj[1].start >= wx and sj[1].stop <= wx + size:
                members.append(j)
        if i not in members:
            members.append(i)
        done[members] = True
        out.append((Window(wx, wy, size), np.isin(comp, members)))
    return out


def _crop(arr: np.ndarray, win: Window) -> np.ndarray:
    """Square crop (edge-replicated where the window leaves the image)."""
    h, w = arr.shape[:2]
    x0, y0, s = win.x0, win.y0, win.size
    pad = [(max(0, -y0), max(0, y0 + s - h)), (max(0, -x0), max(0, x0 + s - w))] + [(0, 0)] * (arr.ndim - 2)
    if any(p != (0, 0) for p in pad):
        arr = np.pad(arr, pad, mode="edge")
        x0, y0 = x0 + pad[1][0], y0 + pad[0][0]
    return arr[y0 : y0 + s, x0 : x0 + s]


class Synthesizer:
    """The inference API: a trained synthesis network (``synthesizer.pt``) with its classes, data mode and blending
    defaults, applied to PIL images or arrays."""

    def __init__(
        self,
        network: torch.nn.Module,
        classes: list[dict],
        data: dict[str, Any] | None = None,
        device: str | torch.device | None = None,
        *,
        dilate: int | None = None,
        feather: int | None = None,
        source: str = "synthesizer",
    ):
        from syndgan.models.snapshots import select_device

        try:
            self.device = select_device("auto" if device is None else str(device))
        except RuntimeError as e:  # e.g. "cuda" asked for on a machine without a GPU
            raise SynthesisInputError(f"{source}: {e}") from None
        self.network = network.to(self.device).eval().requires_grad_(False)
        self.classes = [dict(c) for c in classes]
        self.data = dict(data or {"mode": "resize"})
        self.mode = self.data.get("mode", "resize")
        if self.mode not in ("resize", "patch"):
            raise SynthesisInputError(f"{source}: unknown data mode {self.mode!r}")
        self.resolution = int(network.img_resolution)
        self.channels = int(network.img_channels)
        self.patch_size = int(self.data.get("patch_size") or self.resolution)
        self.source = source
        self._dilate, self._feather = dilate, feather

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None, **kwargs) -> Synthesizer:
        """Load ``synthesizer.pt`` written by the ``train_synth`` stage."""
        from syndgan.models.snapshots import load_checkpoint, load_synthesis_network

        state = load_checkpoint(path)
        network = load_synthesis_network(state, path)
        return cls(network, state["classes"], state["data"], device, source=str(path), **kwargs)

    @property
    def class_names(self) -> list[str]:
        return [c["name"] for c in self.classes]

    def blend_margins(self, scale: float) -> tuple[int, int]:
        """(dilate, feather) in native px for a window ``scale`` native px per network px."""
        erase = int(getattr(self.network, "erase_dilate", 1))
        dilate = self._dilate if self._dilate is not None else int(math.ceil(erase * scale))
        feather = self._feather if self._feather is not None else max(2, int(math.ceil(2 * scale)))
        return dilate, feather

    @torch.no_grad()
    def _run(self, window: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Network output for one square window (S, S, C) uint8 + labels (S, S) -> (S, S, C) float [0, 255]."""
        s, r = window.shape[0], self.resolution
        img = Image.fromarray(window[:, :, 0] if window.shape[2] == 1 else window)
        if s != r:
            img = img.resize((r, r), Image.Resampling.LANCZOS)
        x = np.asarray(img, dtype=np.float32)
        x = x[:, :, None] if x.ndim == 2 else x
        t = torch.from_numpy(x.transpose(2, 0, 1).copy()).unsqueeze(0) / 127.5 - 1.0
        lm = torch.from_numpy(downsample_labels(labels, r).astype(np.int64)).unsqueeze(0)
        y = self.network(t.to(self.device), lm.to(self.device), noise_mode="const").float().clamp(-1, 1)
        y = ((y[0].cpu().numpy().transpose(1, 2, 0) + 1.0) * 127.5).astype(np.float32)
        return _resize_float(y, (s, s)) if s != r else y

    def windows(self, labels: np.ndarray) -> list[tuple[Window | None, np.ndarray]]:
        """The windows ``synthesize`` paints, each with the defect pixels it paints (resize mode: one, None)."""
        if self.mode == "resize":
            return [(None, labels > 0)]
        return defect_windows(labels, self.patch_size, margin=max(2, self.patch_size // 16))

    def _paint(self, work: np.ndarray, labels: np.ndarray, win: Window | None) -> tuple[np.ndarray, float]:
        """Network output placed on a copy of ``work`` (float [0, 255]) and the native px per network px."""
        h, w = work.shape[:2]
        r = self.resolution
        canvas = work.astype(np.float32)
        if win is None:  # resize mode: the whole (possibly non-square) image is one window
            img = Image.fromarray(work[:, :, 0] if work.shape[2] == 1 else work)
            square = np.asarray(img.resize((r, r), Image.Resampling.LANCZOS), dtype=np.uint8)
            y = self._run(square[:, :, None] if square.ndim == 2 else square, resize_labels(labels, r))
            return _resize_float(y, (w, h)), max(h, w) / r
        y = self._run(_crop(work, win), _crop(labels, win))
        x0, y0 = max(win.x0, 0), max(win.y0, 0)
        x1, y1 = min(win.x0 + win.size, w), min(win.y0 + win.size, h)
        canvas[y0:y1, x0:x1] = y[y0 - win.y0 : y1 - win.y0, x0 - win.x0 : x1 - win.x0]
        return canvas, win.size / r

    def synthesize(self, image: Any, mask: Any, *, blend: bool = True) -> Any:
        """Paint the mask's defects into ``image``; returns the same type, mode and size (see module doc)."""
        arr, pil_mode = _as_array(image, "image")
        h, w = arr.shape[:2]
        labels = mask_to_labelmap(mask, self.classes, (w, h))
        if arr.shape[2] == self.channels:
            work = arr
        elif self.channels == 1:  # gray model, RGB input: paint on the luminance
            work = np.asarray(Image.fromarray(arr).convert("L"))[:, :, None]
        else:
            work = np.repeat(arr, 3, axis=2)
        out = work.astype(np.float32)
        changed = np.zeros((h, w), bool)
        for win, members in self.windows(labels) if labels.any() else []:
            own = np.where(members, labels, 0).astype(np.uint8)
            painted, scale = self._paint(work, own, win)
            # Nothing outside the window was painted, and the window holds all its defect pixels, so the
            # blend (and the feather's distance transform) is computed on the window only: on a large
            # image this is most of the time outside the network.
            if win is None:
                ys, xs = slice(0, h), slice(0, w)
            else:
                ys = slice(max(win.y0, 0), min(win.y0 + win.size, h))
                xs = slice(max(win.x0, 0), min(win.x0 + win.size, w))
            if blend:
                alpha = feather_alpha(own[ys, xs], *self.blend_margins(scale))
            else:
                alpha = np.ones(own[ys, xs].shape, np.float32)
            a = alpha[:, :, None]
            here = out[ys, xs]
            out[ys, xs] = np.where(a > 0, a * painted[ys, xs] + (1 - a) * here, here)  # exact input where alpha is 0
            changed[ys, xs] |= alpha > 0
        result = np.clip(np.round(out), 0, 255).astype(np.uint8)
        if arr.shape[2] != self.channels:
            if self.channels == 1:
                result = np.repeat(result, 3, axis=2) if arr.shape[2] == 3 else result
            else:
                result = np.asarray(Image.fromarray(result).convert("L"))[:, :, None]
            result = np.where(changed[:, :, None], result, arr)
        return self._like(result, image, pil_mode)

    @staticmethod
    def _like(result: np.ndarray, original: Any, pil_mode: str | None) -> Any:
        if pil_mode is not None:
            return Image.fromarray(result[:, :, 0] if pil_mode == "L" else result, mode=pil_mode)
        if original.ndim == 2:
            return result[:, :, 0]
        return result


def _resize_float(y: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) float image -> ``size`` (W, H), bicubic per channel in float (no 8-bit rounding twice)."""
    chans = [
        np.asarray(Image.fromarray(y[:, :, c], mode="F").resize(size, Image.Resampling.BICUBIC))
        for c in range(y.shape[2])
    ]
    return np.stack(chans, axis=2).astype(np.float32)
