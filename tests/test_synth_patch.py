"""Patch mode data for train_synth: native-resolution windows come with their label maps."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from synth_helpers import CLASSES, one_thread  # noqa: F401 (fixture)

from pipeline.config import SYNTH_ABLATIONS, TrainSynthConfig
from pipeline.train_synth import ABLATION_OVERRIDES, settings_for
from syndgan.data.datasets import SynthPatchDataset

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture()
def tables(tmp_path):
    rows, ann = [], []
    for i, (w, h) in enumerate([(120, 90), (40, 30)]):  # the second is smaller than a window: scaled up
        path = tmp_path / f"img{i}.png"
        Image.fromarray(np.full((h, w, 3), 40 * i + 50, np.uint8)).save(path)
        rows.append(
            {"id": f"src/img{i}", "path": str(path), "width": w, "height": h, "label": "dust", "split": "train"}
        )
        x0, y0 = (70, 50) if i == 0 else (10, 10)
        pts = [[x0, y0], [x0 + 8, y0], [x0 + 8, y0 + 6], [x0, y0 + 6]]
        ann.append(
            {"image_id": f"src/img{i}", "label": "dust", "shape": "polygon", "points": json.dumps(pts),
             "mask_path": "", "mask_threshold": 127, "x0": x0, "y0": y0, "x1": x0 + 8, "y1": y0 + 6, "area": 48}
        )  # fmt: skip
    pd.DataFrame(rows).to_parquet(tmp_path / "manifest.parquet")
    pd.DataFrame(ann).to_parquet(tmp_path / "annotations.parquet")
    return tmp_path


def test_patch_windows_carry_label_maps(tables):
    ds = SynthPatchDataset(
        tables / "manifest.parquet",
        tables / "annotations.parquet",
        CLASSES,
        split="train",
        patch_size=32,
        resolution=16,
        channels=3,
        defect_patch_prob=1.0,
    )
    torch.manual_seed(0)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (3, 16, 16) and item["labelmap"].shape == (16, 16)
        assert item["label"] == 2 and (item["labelmap"] == 2).any()  # centred on the defect: it is in view
        assert set(item["labelmap"].unique().tolist()) <= {0, 2}


def test_ablation_names_map_onto_settings():
    assert set(ABLATION_OVERRIDES) == set(SYNTH_ABLATIONS)
    cfg = TrainSynthConfig(freeze_decoder=True)
    s = settings_for(cfg, "no_pretrain")
    assert not s.pretrained_decoder and not s.pretrained_discriminator and not s.freeze_decoder
    assert settings_for(cfg, "no_inversion").w_inversion == 0
    assert settings_for(cfg, "single_scale_d").d_scales == [3]
    assert settings_for(cfg, "aux_classifier_d").aux_classifier
    full = settings_for(cfg)
    assert full.pretrained_decoder and full.w_inversion == cfg.w_inversion
