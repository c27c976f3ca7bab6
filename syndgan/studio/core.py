"""The studio's state and actions, independent of the web layer: pick an image, synthesize variants of a
drawn defect with a checkpoint, score them, save the accepted ones as LabelMe files ingest can read.

Quality score (``syndgan.quality.scorers``, shared with the augment stage's quality gate): a real-data
classifier's confidence in the intended class. The ``classify`` stage's ``none`` method is trained on real
images only; its ``model.pt`` (``classify.save_model``; ``syndgan.classify.real_data_model`` names it for
the stage and for ``find_scorer``) gives P(class | image) for the whole image at its resolution. Without
one, the pretraining discriminator's realism; without that, "no scorer".

Every request is validated completely before anything runs or is written; a refused request raises
``StudioError`` (``"<field>: <problem>"``). Results live in memory until saved; saving writes the
image, then its LabelMe JSON (each atomically), so an interrupted save leaves no annotation behind.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from PIL import Image

from syndgan.classify.paths import real_data_model
from syndgan.data.rasterize import colorize
from syndgan.errors import DataError
from syndgan.io import atomic_save_image, atomic_write_json
from syndgan.quality.scorers import ClassifierScorer, DiscriminatorScorer
from syndgan.studio.images import ImageStore, SourceImage, changed_box, png_bytes
from syndgan.studio.masks import Op, StudioError, jitter_ops, labelme_shapes, parse_ops, rasterize_ops

MAX_VARIANTS = 8
MAX_JITTER = 16.0
KEEP_RESULTS = 64  # results held for saving; older ones are dropped
KEEP_BYTES = 512 << 20  # ... and fewer for large images (a 2440 x 2040 RGB result + labels is ~20 MB)
NO_SAVE_SPLITS = ("val", "test")  # a defect painted on a held-out image must not become training data


@dataclass
class Checkpoint:
    name: str
    path: Path
    synth: object = None  # Synthesizer, loaded on first use
    sha256: str = ""


@dataclass
class Result:
    id: str
    source: SourceImage
    image: Image.Image
    labels: np.ndarray
    ops: list[Op]
    checkpoint: Checkpoint
    seed: int
    jitter: float
    score: float | None
    meta: dict = field(default_factory=dict)


def _int(req: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = req.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise StudioError(key, f"must be an integer in {lo}..{hi}, got {v!r}")
    return v


class Studio:
    def __init__(
        self,
        classes: list[dict],
        checkpoints: dict[str, Path],
        images: ImageStore,
        out_dir: Path,
        *,
        channels: int | None = None,
        scorer=None,
        device: str | None = "cpu",
    ):
        self.classes = [dict(c) for c in classes]
        self.checkpoints = {n: Checkpoint(n, Path(p)) for n, p in checkpoints.items()}
        self.images, self.out_dir, self.channels = images, Path(out_dir), channels
        self.scorer, self.device = scorer, device
        self.results: OrderedDict[str, Result] = OrderedDict()
        self.masks: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()  # one synthesis at a time: the network and torch threads are shared

    def info(self) -> dict:
        return {
            "classes": self.classes,
            "checkpoints": list(self.checkpoints),
            "scorer": self.scorer.name if self.scorer else None,
            "splits": ["train", "val", "test", "all"],
            "max_upload_bytes": self.images.max_upload_bytes,
            "max_variants": MAX_VARIANTS,
            "out": str(self.out_dir),
        }

    def synthesizer(self, name: str | None) -> Checkpoint:
        """The named checkpoint (default: the first), loaded once and checked against the project."""
        from syndgan.synthesis import Synthesizer

        name = name or next(iter(self.checkpoints), None)
        ck = self.checkpoints.get(name)
        if ck is None:
            raise StudioError("checkpoint", f"{name!r} is not one of {', '.join(self.checkpoints) or '(none)'}")
        if ck.synth is None:
            try:
                synth = Synthesizer.from_checkpoint(ck.path, device=self.device)
            except Exception as e:  # a missing or foreign file: say so on the page
                why = e.problem if isinstance(e, DataError) else f"{type(e).__name__}: {e}"
                raise StudioError("checkpoint", f"{ck.path}: cannot load: {why}", status=409) from None
            want = [(c["name"], int(c["id"]), list(c["color"])) for c in self.classes]
            got = [(c["name"], int(c["id"]), list(c["color"])) for c in synth.classes]
            if got != want:
                raise StudioError(
                    "checkpoint",
                    f"{ck.path} was trained for classes {[g[0] for g in got]} (ids/colours {got}) but "
                    f"ingest.classes are {[w[0] for w in want]} ({want}); retrain or pick another checkpoint",
                    status=409,
                )
            if self.channels is not None and synth.channels != self.channels:
                raise StudioError(
                    "checkpoint",
                    f"{ck.path} paints {synth.channels}-channel images but the dataset has {self.channels} "
                    "channel(s); retrain or pick another checkpoint",
                    status=409,
                )
            ck.sha256 = hashlib.sha256(ck.path.read_bytes()).hexdigest()
            ck.synth = synth
        return ck

    def synthesize(self, req: dict) -> dict:
        if not isinstance(req, dict):
            raise StudioError("request", "must be a JSON object")
        src = self.images.get(req.get("image"))
        size = src.image.size
        ops = parse_ops(req.get("ops"), self.classes, size)
        n = _int(req, "variants", 1, 1, MAX_VARIANTS)
        seed = _int(req, "seed", 0, 0, 2**31 - 1)
        jitter = req.get("jitter", 0)
        if not isinstance(jitter, (int, float)) or isinstance(jitter, bool) or not 0 <= jitter <= MAX_JITTER:
            raise StudioError("jitter", f"must be a number of px in 0..{MAX_JITTER:g}, got {jitter!r}")
        labels = rasterize_ops(ops, size)
        if not labels.any():
            raise StudioError("mask", "empty: the eraser removed everything drawn; draw a region")
        ck = self.synthesizer(req.get("checkpoint"))
        mask_id = self._keep(self.masks, png_bytes(Image.fromarray(self._colours(labels), "RGB")))
        out = []
        with self._lock:
            for k in range(n):
                # variant 0 is the drawing itself; the others jitter it, reproducibly from their seed
                v_ops = ops if k == 0 else jitter_ops(ops, seed + k, float(jitter), size)
                v_labels = labels if k == 0 else rasterize_ops(v_ops, size)
                t0 = time.perf_counter()
                img = ck.synth.synthesize(src.image, v_labels)
                ms = (time.perf_counter() - t0) * 1000
                main_class = self._main_class(v_labels)
                score = self.scorer.score(img, main_class, self._window(ck, v_labels)) if self.scorer else None
                res = Result("", src, img, v_labels, v_ops, ck, seed + k, float(jitter) if k else 0.0, score)
                res.meta = {"class": main_class, "ms": round(ms, 1), "changed": changed_box(src.image, img)}
                res.id = self._keep(self.results, res)
                out.append({"id": res.id, "seed": res.seed, "jitter": res.jitter, "score": score, **res.meta})
        return {"mask": mask_id, "results": out, "scorer": self.scorer.name if self.scorer else None}

    @staticmethod
    def _window(ck: Checkpoint, labels: np.ndarray) -> tuple[int, int, int] | None:
        """Patch mode: the first window the synthesizer painted (x0, y0, size); resize mode: None."""
        win = ck.synth.windows(labels)[0][0]
        return None if win is None else (win.x0, win.y0, win.size)

    def _colours(self, labels: np.ndarray) -> np.ndarray:
        return colorize(labels, {int(c["id"]): c["color"] for c in self.classes})

    def _main_class(self, labels: np.ndarray) -> str:
        counts = np.bincount(labels.ravel(), minlength=len(self.classes) + 1)
        counts[0] = 0
        return self.classes[int(np.argmax(counts)) - 1]["name"]

    @staticmethod
    def _keep(store: OrderedDict, value) -> str:
        key = hashlib.sha256(f"{time.time_ns()}-{len(store)}-{id(value)}".encode()).hexdigest()[:16]
        store[key] = value

        def size(v) -> int:
            return (
                len(v)
                if isinstance(v, bytes)
                else v.image.width * v.image.height * len(v.image.getbands()) + v.labels.nbytes
            )

        total = sum(size(v) for v in store.values())
        while len(store) > KEEP_RESULTS or (total > KEEP_BYTES and len(store) > 1):
            total -= size(store.popitem(last=False)[1])
        return key

    def result(self, result_id: str) -> Result:
        res = self.results.get(result_id)
        if res is None:
            raise StudioError("result", f"{result_id!r} is unknown or expired; synthesize again", status=404)
        return res

    def mask_png(self, mask_id: str) -> bytes:
        if mask_id not in self.masks:
            raise StudioError("mask", f"{mask_id!r} is unknown or expired", status=404)
        return self.masks[mask_id]

    def save(self, result_id: str) -> dict:
        """Write the result as ``<name>.png`` + ``<name>.json`` (LabelMe, marked synthetic) in ``out_dir``."""
        res = self.result(result_id)
        if res.source.split in NO_SAVE_SPLITS:
            raise StudioError(
                "save",
                f"{res.source.name} is a {res.source.split} image: a defect painted on it must not become "
                "training data (it would leak held-out content); use a train image or an upload",
                status=409,
            )
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(res.source.name).stem)[-60:].strip("._") or "image"
        digest = hashlib.sha256(res.image.tobytes() + res.labels.tobytes()).hexdigest()[:10]
        name = f"{stem}__{res.meta['class']}__s{res.seed}__{digest}"
        w, h = res.image.size
        doc = {
            "version": "5.4.1",
            "flags": {"synthetic": True},
            "shapes": labelme_shapes(res.ops, res.labels, self.classes),
            "imagePath": f"{name}.png",
            "imageData": None,
            "imageHeight": h,
            "imageWidth": w,
            "syndgan": {  # provenance: LabelMe keeps unknown top-level keys, ingest ignores them
                "synthetic": True,
                "tool": "syndgan studio",
                "source_image": res.source.name,
                "source_split": res.source.split,
                "source_sha256": res.source.sha256,
                "checkpoint": str(res.checkpoint.path),
                "checkpoint_sha256": res.checkpoint.sha256,
                "seed": res.seed,
                "jitter_px": res.jitter,
                "score": res.score,
                "scorer": self.scorer.name if self.scorer else None,
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        }
        png = atomic_save_image(self.out_dir / f"{name}.png", res.image)
        js = atomic_write_json(self.out_dir / f"{name}.json", doc)
        return {"image": str(png), "json": str(js), "name": name}


# --------------------------------------------------------------------------- quality score


def find_scorer(
    classify_out: str | Path,
    explicit: str | Path | None = None,
    pretrain_dir: str | Path | None = None,
    seed: int = 0,
):
    """The given classifier (errors if unusable), else the real-data classifier the classify stage saved under
    ``classify_out`` (method ``none``, ``seed``), else the pretraining discriminator
    (``<pretrain_dir>/discriminator.pt``), else None."""
    if explicit:
        return ClassifierScorer.from_file(explicit)
    path = real_data_model(classify_out, seed)
    if path.is_file():
        return ClassifierScorer.from_file(path)
    if pretrain_dir is not None:
        disc = Path(pretrain_dir) / "discriminator.pt"
        if disc.is_file():
            return DiscriminatorScorer.from_file(disc)
    return None
