"""Tiny (32 px) stage outputs in the real formats for the evaluate and report tests: a processed dataset
(rasterize), a synthesizer checkpoint (train_synth), augment outputs made by the augment stage itself,
and the JSON metrics of train_synth / classify."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml
from PIL import Image

RES = 32
CLASSES = [
    {"name": "bump", "id": 1, "color": [255, 64, 64]},
    {"name": "dust", "id": 2, "color": [64, 128, 255]},
]
# (split, label) -> images; dust has a single test image (FID/KID must say n/a for it, not crash)
COUNTS = {
    ("train", "normal"): 8,
    ("train", "bump"): 4,
    ("train", "dust"): 3,
    ("val", "normal"): 2,
    ("val", "bump"): 1,
    ("val", "dust"): 1,
    ("test", "normal"): 4,
    ("test", "bump"): 3,
    ("test", "dust"): 1,
}


def make_processed(root: Path, seed: int = 0) -> pd.DataFrame:
    """``data/processed`` as rasterize writes it: index.parquet, dataset.json, images/colormaps/labelmaps."""
    rng = np.random.default_rng(seed)
    for sub in ("images", "colormaps", "labelmaps"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = {c["name"]: c["id"] for c in CLASSES}
    colors = {c["id"]: c["color"] for c in CLASSES}
    rows = []
    for (split, label), n in COUNTS.items():
        for i in range(n):
            image_id = f"demo/{split}_{label}_{i}"
            stem = image_id.replace("/", "__")
            base = rng.uniform(60, 190, size=(4, 4, 3)).astype(np.uint8)
            img = np.asarray(Image.fromarray(base).resize((RES, RES), Image.Resampling.BILINEAR)).copy()
            labels = np.zeros((RES, RES), np.uint8)
            if label != "normal":
                y, x = rng.integers(8, RES - 14, size=2)
                labels[y : y + 6, x : x + 5] = ids[label]
                img[labels > 0] = 240 if label == "bump" else 20
            cmap = np.zeros((RES, RES, 3), np.uint8)
            for k, col in colors.items():
                cmap[labels == k] = col
            Image.fromarray(img, "RGB").save(root / "images" / f"{stem}.png")
            Image.fromarray(labels, "L").save(root / "labelmaps" / f"{stem}.png")
            Image.fromarray(cmap, "RGB").save(root / "colormaps" / f"{stem}.png")
            rows.append(
                {
                    "id": image_id,
                    "label": label,
                    "labels": "" if label == "normal" else label,
                    "split": split,
                    "group": f"{split}_{label}_{i}",
                    "image": f"images/{stem}.png",
                    "colormap": f"colormaps/{stem}.png",
                    "labelmap": f"labelmaps/{stem}.png",
                }
            )
    index = pd.DataFrame(rows)
    index.to_parquet(root / "index.parquet", index=False)
    counts = {s: g["label"].value_counts().to_dict() for s, g in index.groupby("split")}
    info = {"resolution": RES, "channels": 3, "classes": CLASSES, "counts": counts}
    (root / "dataset.json").write_text(json.dumps(info, indent=2))
    return index


def write_synthesizer(path: Path, seed: int = 0) -> Path:
    """An untrained but complete synthesizer.pt for CLASSES at RES px (what train_synth writes)."""
    from syndgan.models.generators import create_generator, generator_spec
    from syndgan.training.settings import SynthSettings
    from syndgan.training.synth import build_network, save_synthesizer

    gen_kw = dict(z_dim=16, w_dim=16, img_resolution=RES, img_channels=3, channel_base=256, channel_max=16)
    torch.manual_seed(seed)
    G = create_generator("fastgan", **gen_kw)
    s = SynthSettings(n_blocks=2, enc_channel_base=128, enc_channel_max=16, sft_hidden=4, device="cpu")
    network = build_network(G, CLASSES, s)
    for conv in network.skips.values():  # non-zero skips: the output depends on the input image
        torch.nn.init.normal_(conv.weight, std=0.1)
    pre = {"generator": generator_spec("fastgan", **gen_kw)}
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_synthesizer(path, network.eval(), pre, s, CLASSES, {"mode": "resize"}, {"steps": 0})


def recon_metrics(normal: float, defect: float, ablation: str = "none") -> dict:
    """metrics/train_synth.json as train_synth writes it (effnet perceptual distance)."""
    p = "perceptual_effnet"
    return {
        f"recon_{p}_normal": normal,
        f"recon_{p}_defect": defect,
        f"recon_{p}_defect_nomap": defect + 0.01,
        "recon_l1_normal": normal / 10,
        "recon_l1_defect": defect / 10,
        "recon_l1_defect_nomap": defect / 10 + 0.001,
        "recon_images_normal": 4,
        "recon_images_defect": 4,
        "perceptual": p,
        "ablation": ablation,
        "data_mode": "resize",
        "steps": 2,
        "train_seconds": 1.0,
        "images_per_s": 3.0,
        "train_images": 15,
    }


def write_params(root: Path, **evaluate) -> Path:
    params = {
        "ingest": {"classes": {c["name"]: c["color"] for c in CLASSES}},
        "rasterize": {"resolution": RES},
        "train_synth": {"ablations": ["no_pretrain", "no_inversion"]},
        "augment": {
            "targets": {"mode": "count", "count": 5},
            "placement": {"min_context_agreement": 0.5, "tries": 50},
        },
        "classify": {"methods": ["none", "copy_paste", "syndgan"], "seeds": [0, 1]},
        "evaluate": {
            "methods": ["copy_paste", "syndgan", "cutmix"],
            "max_images_per_class": 4,
            "ablation_images_per_class": 3,
            "kid_subsets": 10,
            "batch_size": 8,
            "threads": 1,
            **evaluate,
        },
        "report": {"grid_rows": 2},
    }
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def make_project(root: Path) -> Path:
    """A project folder with the outputs evaluate reads (cwd must be ``root`` for the stage code)."""
    from pipeline import augment
    from pipeline.config import load_params

    make_processed(root / "data" / "processed")
    write_synthesizer(root / "models" / "train_synth" / "synthesizer.pt")
    write_synthesizer(root / "models" / "train_synth_ablations" / "no_pretrain" / "synthesizer.pt", seed=1)
    params = load_params(write_params(root))
    for method in ("copy_paste", "syndgan", "cutmix"):
        augment.run(params, method)
    (root / "metrics" / "train_synth_ablations").mkdir(parents=True, exist_ok=True)
    (root / "metrics" / "train_synth.json").write_text(json.dumps(recon_metrics(0.1743, 0.1813)))
    (root / "metrics" / "train_synth_ablations" / "no_pretrain.json").write_text(
        json.dumps(recon_metrics(0.2516, 0.2615, "no_pretrain"))
    )
    return root / "params.yaml"
