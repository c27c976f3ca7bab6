"""Scorers of synthetic images, shared by the defect studio (one image at a time) and the augment stage's
quality gate (batches, ``batch_scores``: higher is better, what the gate ranks by).

- ``ClassifierScorer``: P(intended class) from a classifier in ``classify``'s ``model.pt`` format, the image
  prepared exactly as ``syndgan.classify.data`` prepares training images (RGB, bilinear squash to its size).
  ``train_classifier_scorer`` fine-tunes one on given (train) images with ``syndgan.classify.train_classifier``.
- ``DiscriminatorScorer``: realism from the pretraining projected discriminator: the mean of its logit maps
  (the gate ranks by it, unbounded, so near-certain images never tie); the studio shows its sigmoid. It judges
  what it was trained on: the whole image, or in patch mode a window around the defect.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import shutil
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from syndgan.errors import DataError
from syndgan.io import atomic_write
from syndgan.quality.settings import GateClassifierSettings

Window = tuple[int, int, int]  # (x0, y0, size): a square crop, PIL pads outside the image with black
BATCH = 64


def as_pil(image) -> Image.Image:
    return image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image).squeeze())


class ClassifierScorer:
    def __init__(self, model: torch.nn.Module, classes: list[str], resolution: int, source: str):
        self.model = model.eval().requires_grad_(False)
        self.classes, self.resolution, self.source = list(classes), int(resolution), source
        self.name = f"real-data classifier P(class) ({Path(source).parent.parent.name})"

    @classmethod
    def from_file(cls, path: str | Path) -> ClassifierScorer:
        """A ``model.pt`` of the classify stage (or the gate's ``scorer.pt``, the same format)."""
        from syndgan.classify.train import create_classifier

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model = create_classifier(state["arch"], len(state["classes"]), pretrained=False)
            model.load_state_dict(state["model"])
        except FileNotFoundError:
            raise DataError(path, "classifier not found") from None
        except (KeyError, RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as e:
            raise DataError(path, f"not a classify model.pt: {type(e).__name__}: {e}") from None
        return cls(model, state["classes"], state["resolution"], str(path))

    def prepare(self, image) -> np.ndarray:
        """uint8 (3, R, R) as ``syndgan.classify.data.load_images`` makes training images."""
        img = as_pil(image).convert("RGB")
        if img.size != (self.resolution, self.resolution):
            img = img.resize((self.resolution, self.resolution), Image.Resampling.BILINEAR)
        return np.asarray(img).transpose(2, 0, 1)

    def batch_scores(self, images: Sequence, class_names: Sequence[str], windows=None) -> np.ndarray:
        """P(class_names[i] | images[i]); the whole image is judged (``windows`` are not used)."""
        from syndgan.classify.train import predict

        unknown = sorted(set(class_names) - set(self.classes))
        if unknown:
            raise DataError(self.source, f"the classifier does not know class {unknown[0]!r} ({self.classes})")
        if not len(images):
            return np.zeros(0)
        x = torch.from_numpy(np.stack([self.prepare(im) for im in images]))
        probs = torch.softmax(predict(self.model, x, next(self.model.parameters()).device, BATCH), dim=1)
        idx = torch.tensor([self.classes.index(c) for c in class_names])
        return probs[torch.arange(len(idx)), idx].double().numpy()

    def score(self, image, class_name: str, window: Window | None = None) -> float | None:
        """P(``class_name``) for the whole image; None for a class the classifier does not know."""
        if class_name not in self.classes:
            return None
        return float(self.batch_scores([image], [class_name])[0])


class DiscriminatorScorer:
    name = "discriminator realism (pretrain D, sigmoid of mean logit)"

    def __init__(self, D: torch.nn.Module, resolution: int, channels: int, source: str = "discriminator"):
        self.D, self.resolution, self.channels = D.eval().requires_grad_(False), int(resolution), int(channels)
        self.source = source

    @classmethod
    def from_file(cls, discriminator: str | Path) -> DiscriminatorScorer:
        """The pretrain stage's ``discriminator.pt`` (its spec names the resolution and channels it judges)."""
        from syndgan.models.snapshots import load_discriminator

        D = load_discriminator(discriminator)
        return cls(D, D.img_resolution, D.img_channels, str(discriminator))

    def prepare(self, image, window: Window | None) -> np.ndarray:
        img = as_pil(image)
        if window is not None:
            x0, y0, size = window
            img = img.crop((x0, y0, x0 + size, y0 + size))
        img = img.convert("L" if self.channels == 1 else "RGB").resize(
            (self.resolution, self.resolution), Image.Resampling.LANCZOS
        )
        arr = np.asarray(img, np.float32).reshape(self.resolution, self.resolution, self.channels)
        return arr.transpose(2, 0, 1) / 127.5 - 1.0

    @torch.no_grad()
    def batch_scores(self, images: Sequence, class_names: Sequence[str], windows=None) -> np.ndarray:
        """Mean logit per image (> 0: judged real); ``windows[i]``: judge that crop only (patch mode)."""
        windows = windows if windows is not None else [None] * len(images)
        device = next(self.D.parameters()).device
        out = []
        for i in range(0, len(images), BATCH):
            x = np.stack(
                [self.prepare(im, w) for im, w in zip(images[i : i + BATCH], windows[i : i + BATCH], strict=True)]
            )
            logits = self.D(torch.from_numpy(x).to(device), augment=False).float()
            out.append(logits.flatten(1).mean(1).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def score(self, image, class_name: str, window: Window | None = None) -> float:
        """Sigmoid of the mean logit (real > 0.5), uncalibrated: what the studio shows."""
        return float(1.0 / (1.0 + np.exp(-self.batch_scores([image], [class_name], [window])[0])))


# --------------------------------------------------------------------------- a scorer trained on train images


def scorer_fingerprint(
    settings: GateClassifierSettings, classes: Sequence[str], seed: int, ids: Sequence[str], files
) -> str:
    """What decides the trained scorer: settings, classes, seed, the images' ids and bytes."""
    h = hashlib.sha256(json.dumps([asdict(settings), list(classes), seed, list(ids)], sort_keys=True).encode())
    for f in files:
        h.update(Path(f).read_bytes())
    return h.hexdigest()


def training_ids(path: str | Path) -> list[str]:
    """The image ids a ``train_classifier_scorer`` file was trained on (its provenance)."""
    try:
        return list(torch.load(path, map_location="cpu", weights_only=True)["train_ids"])
    except (KeyError, OSError, RuntimeError, pickle.UnpicklingError) as e:
        raise DataError(path, f"no scorer training record: {type(e).__name__}: {e}") from None


def train_classifier_scorer(
    root: Path,
    rows,
    class_names: Sequence[str],
    settings: GateClassifierSettings,
    seed: int,
    out: Path,
    cached: Path | None = None,
) -> ClassifierScorer:
    """Fine-tune on the processed images ``rows`` (id, image, label: the real train pool, nothing else) for
    ``settings.steps`` and write ``out`` (``model.pt`` format + ``train_ids`` + ``fingerprint``).

    ``cached``: a previous ``out``; reused when it was trained on the same images with the same settings and seed.
    """
    from syndgan.classify.data import image_set
    from syndgan.classify.train import train_classifier

    rows = rows.sort_values("id")
    ids = list(rows["id"])
    fingerprint = scorer_fingerprint(settings, class_names, seed, ids, [root / p for p in rows["image"]])
    if cached is not None and cached.is_file():
        try:
            state = torch.load(cached, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError):  # a damaged cache is only a missed shortcut
            state = {}
        if state.get("fingerprint") == fingerprint:
            atomic_write(out, lambda tmp: shutil.copyfile(cached, tmp))  # the same bytes, not a re-save
            return ClassifierScorer.from_file(out)
    cs = settings.classifier_settings()
    train = image_set(root, rows, class_names, cs.resolution, False, root / "index.parquet")
    # the one evaluation (at the last step) is on the training images: there is nothing to select
    result = train_classifier(train, train, list(class_names), cs, seed, cs.steps)
    state = {
        "model": {k: v.cpu() for k, v in result.model.state_dict().items()},
        "arch": cs.arch,
        "classes": list(class_names),
        "resolution": cs.resolution,
        "train_ids": ids,  # provenance: checked against the train pool by the caller
        "steps": result.steps_run,
        "seed": seed,
        "fingerprint": fingerprint,
    }
    # saved through memory: a file's torch archive is named after it, and the atomic temp name is random
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(out, lambda tmp: tmp.write_bytes(buf.getvalue()))
    return ClassifierScorer.from_file(out)
