"""Shared pytest fixtures. Each stage's fixtures carry its name as a prefix (``ingest_...``)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# --------------------------------------------------------------------------- the project's own DVC folder


@pytest.fixture
def project_dvc():
    """Held by tests that run DVC in this checkout (not a copy): under ``pytest -n`` two of them at once could
    meet DVC's repo lock ("Unable to acquire lock"), so they take turns across workers."""
    import fcntl
    import tempfile

    root = Path(__file__).resolve().parent.parent
    lock = Path(tempfile.gettempdir()) / f"syndgan-tests-{zlib.crc32(str(root).encode()):08x}.lock"
    with lock.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- ingest


@pytest.fixture
def ingest_image():
    """``make(path, size=(w, h), mode="L", seed=None) -> path``: a small noise image, unique per path.

    The format follows the suffix; without ``seed`` the pixels derive from the file name, so two
    images never collide by accident (duplicates are made on purpose, by copying).
    """

    def make(path, size=(24, 16), mode="L", seed=None) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(zlib.crc32(str(path).encode()) if seed is None else seed)
        shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path)
        return path

    return make


@pytest.fixture
def ingest_mask():
    """``make(path, size, boxes=[(x0, y0, x1, y1)], value=255) -> path``: an "L" mask with filled boxes."""

    def make(path, size=(24, 16), boxes=(), value=255) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arr = np.zeros((size[1], size[0]), np.uint8)
        for x0, y0, x1, y1 in boxes:
            arr[y0:y1, x0:x1] = value
        Image.fromarray(arr, "L").save(path)
        return path

    return make


@pytest.fixture
def ingest_labelme():
    """``make(json_path, image_path="<stem>.png", shapes=[(label, points[, type])], size=(w, h), **extra)``.

    Writes a LabelMe JSON as LabelMe 5 does; a shape given as a dict is written as is; ``extra``
    overrides top-level keys (imageData, flags...).
    """

    def _labelme_shape(label, points, kind="polygon"):
        return {"label": label, "points": [list(p) for p in points], "group_id": None, "shape_type": kind, "flags": {}}

    def make(json_path, image_path=None, shapes=(), size=(24, 16), **extra) -> Path:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "version": "5.4.1",
            "flags": {},
            "shapes": [s if isinstance(s, dict) else _labelme_shape(*s) for s in shapes],
            "imagePath": image_path if image_path is not None else f"{json_path.stem}.png",
            "imageData": None,
            "imageHeight": size[1],
            "imageWidth": size[0],
        }
        doc.update(extra)
        json_path.write_text(json.dumps(doc), encoding="utf-8")
        return json_path

    return make


@pytest.fixture
def ingest_labelme_dataset(tmp_path, ingest_image, ingest_labelme):
    """A LabelMe dataset of 3 parts x 2 illuminations (``part<k>_<light>``): part 1 has a scratch."""
    root = tmp_path / "lm"
    square = [(2, 2), (10, 2), (10, 8), (2, 8)]
    for k in range(3):
        for light in ("a", "b"):
            stem = f"part{k}_{light}"
            ingest_image(root / f"{stem}.png")
            ingest_labelme(root / f"{stem}.json", shapes=[("scratch", square)] if k == 1 else [])
    return root
