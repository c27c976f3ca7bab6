"""A tiny studio project for the studio tests: a 32 px synthesizer, normal images in train and test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from synth_helpers import CLASSES, write_synthesizer

from syndgan.studio import ImageStore, Studio

SIZE = (48, 40)  # (w, h): not the network's 32 px, so resize mode really resizes


def smooth_image(path: Path, seed: int, size=SIZE) -> Path:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    Image.fromarray(small).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def make_project(root: Path) -> dict:
    """{"checkpoint", "manifest", "data", "out"} under ``root``."""
    data = root / "data"
    data.mkdir(parents=True)
    rows = []
    for i, split in enumerate(["train", "train", "test"]):
        p = smooth_image(data / f"normal{i}.png", i)
        rows.append({"id": f"demo/normal{i}", "path": str(p), "width": SIZE[0], "height": SIZE[1]})
        rows[-1].update(label="normal", split=split)
    rows.append({**rows[0], "id": "demo/defect0", "label": "bump"})  # not normal: never listed
    ckpt = write_synthesizer(root / "synthesizer.pt")
    return {"checkpoint": ckpt, "manifest": pd.DataFrame(rows), "data": data, "out": root / "out"}


def make_studio(project: dict, classes=None, channels=None, **kw) -> Studio:
    store = ImageStore(project["manifest"], [project["data"]], **kw)
    return Studio(
        classes or CLASSES, {"tiny": project["checkpoint"]}, store, project["out"], channels=channels, device="cpu"
    )
