"""Tiny (32 px) SyNDGAN building blocks shared by the synthesis tests: a pretrained-decoder file, a
pretraining discriminator checkpoint, an in-memory dataset and a synthesizer checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from syndgan.models.generators import create_generator, generator_spec
from syndgan.models.snapshots import DISCRIMINATOR_FORMAT
from syndgan.training.common import save_checkpoint
from syndgan.training.pretrain import build_networks, discriminator_spec
from syndgan.training.settings import PretrainSettings, SynthSettings

RES = 32
CLASSES = [
    {"name": "bump", "id": 1, "color": [255, 64, 64]},
    {"name": "dust", "id": 2, "color": [64, 128, 255]},
]
GEN_KW = dict(z_dim=16, w_dim=16, img_resolution=RES, img_channels=3, channel_base=256, channel_max=16)


def pretrain_settings(generator: str = "fastgan") -> PretrainSettings:
    return PretrainSettings(
        generator=generator,
        z_dim=16,
        w_dim=16,
        resolution=RES,
        channels=3,
        g_channel_base=256,
        g_channel_max=16,
        d_channel_base=128,
        d_channel_max=16,
        d_proj_channels=8,
        seed=0,
    )


def write_pretrained(folder: Path, generator: str = "fastgan") -> tuple[Path, Path]:
    """(generator.pt, discriminator.pt) as pretraining writes them, with random weights."""
    from syndgan.training.common import to_plain

    torch.manual_seed(0)
    s = pretrain_settings(generator)
    G, D = build_networks(s)
    gen = save_checkpoint(
        folder / "generator.pt",
        {
            "generator": generator_spec(generator, **s.generator_kwargs()),
            "G_ema": G.state_dict(),
            "settings": to_plain(s),
        },
    )
    disc = save_checkpoint(
        folder / "discriminator.pt",
        {"format": DISCRIMINATOR_FORMAT, "spec": discriminator_spec(s), "D": D.trainable_state_dict(), "step": 0},
    )
    return gen, disc


class TinyDataset:
    """Items like ProcessedDataset(with_maps=True): random smooth images, every third one with a defect."""

    def __init__(self, n: int = 6, seed: int = 0, res: int = RES):
        g = torch.Generator().manual_seed(seed)
        base = torch.rand(n, 3, res // 4, res // 4, generator=g) * 2 - 1
        self.images = torch.nn.functional.interpolate(base, size=(res, res), mode="bilinear", align_corners=False)
        self.maps = torch.zeros(n, res, res, dtype=torch.long)
        self.labels = []
        for i in range(n):
            k = (i % 3) if i % 3 else 0
            if k:
                y, x = 4 + 3 * i % 16, 6 + 5 * i % 16
                self.maps[i, y : y + 6, x : x + 5] = k
                self.images[i, :, y : y + 6, x : x + 5] = 0.9 if k == 1 else -0.9
            self.labels.append(k)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i].clone(), "labelmap": self.maps[i].clone(), "label": self.labels[i]}


def tiny_settings(**kw):
    base = dict(
        n_blocks=3,
        enc_channel_base=128,
        enc_channel_max=16,
        sft_hidden=4,
        batch_size=2,
        steps=2,
        checkpoint_every=0,
        sample_every=0,
        log_every=1,
        device="cpu",
        progress=False,
        perceptual="effnet",
    )
    base.update(kw)
    return SynthSettings(**base)


def write_synthesizer(path: Path, data: dict | None = None, generator: str = "fastgan") -> Path:
    """An untrained but complete synthesizer.pt (the API does not care how good the weights are)."""
    from syndgan.training.synth import build_network, save_synthesizer

    torch.manual_seed(0)
    G = create_generator(generator, **GEN_KW)
    s = tiny_settings()
    network = build_network(G, CLASSES, s)
    # Non-zero skips so the output depends on the input image.
    for conv in network.skips.values():
        torch.nn.init.normal_(conv.weight, std=0.1)
    pre = {"generator": generator_spec(generator, **GEN_KW)}
    return save_synthesizer(path, network.eval(), pre, s, CLASSES, data or {"mode": "resize"}, {"steps": 0})


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread: on a shared 2-core machine, OpenMP threads waiting on each other cost 10-100x."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
