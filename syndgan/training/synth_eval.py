"""SyNDGAN's reconstruction metrics (paper Tables 2 and 5) and the real | input | reconstruction grids."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from syndgan.models.synthesis_network import SynthesisNetwork
from syndgan.training.common import save_image_grid
from syndgan.training.synth_step import collate, region_l1


@torch.no_grad()
def reconstruct(
    network: SynthesisNetwork, images: torch.Tensor, labelmaps: torch.Tensor, device: torch.device, batch: int = 16
) -> torch.Tensor:
    """The network's raw output (no blending), clamped to [-1, 1], on CPU."""
    out = []
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch].to(device)
        m = labelmaps[i : i + batch].to(device)
        out.append(network(x, m, noise_mode="const").float().clamp(-1, 1).cpu())
    return torch.cat(out) if out else images.new_zeros((0, *images.shape[1:]))


@torch.no_grad()
def evaluate_reconstruction(
    network: SynthesisNetwork, dataset, device: torch.device, perceptual: nn.Module, batch: int = 16
) -> dict[str, float]:
    """Perceptual distance and L1 between real images and the network's raw reconstructions (paper Tables 2 and 5).

    ``recon_<name>_normal`` / ``_defect``: images with their own map (defects erased and repainted);
    ``recon_<name>_defect_nomap``: defect images with an empty map (pure encode-decode, the paper's
    "segmentation map devoid of defect information"). ``<name>`` is the perceptual distance's name.
    ``recon_l1_defect_region``: L1 over the painted (dilated, erased) region of defect images only.
    """
    from syndgan.metrics.base import to_uint8, uint8_to_unit

    network.eval()
    name = perceptual.name
    n = len(dataset)
    sums: dict[str, list[float]] = {}
    for start in range(0, n, batch):
        images, labelmaps, labels = collate(dataset, list(range(start, min(n, start + batch))))
        variants = [("", labelmaps)]
        if bool((labels > 0).any()):
            variants.append(("_nomap", torch.zeros_like(labelmaps)))
        for suffix, maps in variants:
            fake = reconstruct(network, images, maps, device, batch)
            # Compare 8-bit images, as a saved reconstruction would be compared.
            real_u, fake_u = uint8_to_unit(to_uint8(images)), uint8_to_unit(to_uint8(fake))
            d = perceptual(fake_u.to(device), real_u.to(device)).double().cpu()
            real_d, fake_d = real_u.double(), fake_u.double()
            l1 = (fake_d - real_d).abs().flatten(1).mean(1)
            region = None if suffix else network.painted_region(maps.to(network.palette.device)).cpu()
            for i in range(images.shape[0]):
                kind = "defect" if labels[i] > 0 else "normal"
                if suffix and kind == "normal":
                    continue
                sums.setdefault(f"recon_{name}_{kind}{suffix}", []).append(float(d[i]))
                sums.setdefault(f"recon_l1_{kind}{suffix}", []).append(float(l1[i]))
                if kind == "defect" and region is not None:  # the painted pixels alone (a defect is ~1 % of an image)
                    r = region_l1(fake_d[i : i + 1], real_d[i : i + 1], region[i : i + 1])
                    sums.setdefault("recon_l1_defect_region", []).append(float(r))
    out: dict[str, float] = {k: sum(v) / len(v) for k, v in sorted(sums.items())}
    out["recon_images_normal"] = len(sums.get(f"recon_{name}_normal", []))
    out["recon_images_defect"] = len(sums.get(f"recon_{name}_defect", []))
    return out


def masked_inputs(network: SynthesisNetwork, images: torch.Tensor, labelmaps: torch.Tensor) -> torch.Tensor:
    """What the network sees, for display: erased image with the class colours drawn in."""
    with torch.no_grad():
        lm = labelmaps.to(network.palette.device).long()
        x = network.erase(images.to(network.palette.device), lm)
        color = network.palette[lm.clamp(0, network.num_classes)].permute(0, 3, 1, 2) * 2 - 1
        if x.shape[1] == 1:
            color = color.mean(dim=1, keepdim=True)
        m = network.mask(lm)
        return (x * (1 - m) + color * m).cpu()


def save_reconstruction_grid(
    network: SynthesisNetwork, images: torch.Tensor, labelmaps: torch.Tensor, path: Path, device: torch.device
) -> Path:
    """Rows of (real, masked input, reconstruction): three columns per image."""
    network.eval()
    fake = reconstruct(network, images, labelmaps, device)
    shown = masked_inputs(network, images, labelmaps)
    tiles = torch.stack([images.cpu(), shown, fake], dim=1).flatten(0, 1)
    return save_image_grid(tiles, path, nrow=6 if images.shape[0] > 1 else 3)
