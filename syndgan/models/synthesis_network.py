"""SyNDGAN's synthesis network (paper Sec. III.B, Fig. 2): SFT encoder + pretrained generator as decoder.

    image, label map -> erase the (dilated) defect region -> [erased image | mask | class map]
      -> conv -> 7 SFT residual blocks (downsampling to 4x4) -> latent code (W or W+, around G's w_avg)
                                                           \\-> skip features at 8 .. R px (1x1, zero-init)
      -> G.synthesis(ws, skips) -> image

Interpretation of the paper's "real defect image masked by its segmentation map": the defect pixels are
blanked (mid-grey) and the class map says what to paint there. Training reconstructs the real image, so the
network learns to paint a defect of the map's class into the blank from its surroundings; at inference the
same network paints into a normal image, and normal images with an empty map train plain reconstruction.

The class map fed to the encoder and to every SFT layer is ``seg_encoding``: ``onehot`` (K channels),
``color`` (the class colours, RGB in [0, 1], background black) or ``both``. An empty map is all zeros.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from syndgan.models.sft import SFTLayer

SEG_ENCODINGS = ("onehot", "color", "both")
LATENTS = ("w", "w+")


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a (B, 1, H, W) {0, 1} mask by a square of side 2 * radius + 1."""
    if radius <= 0:
        return mask
    return F.max_pool2d(mask, 2 * radius + 1, stride=1, padding=radius)


class SFTResBlock(nn.Module):
    """SFT -> lrelu -> conv -> SFT -> lrelu -> conv (stride 2 when ``down``), plus a (pooled) 1x1 shortcut.

    The channel count changes in the second conv, after downsampling: the costly full-resolution conv
    stays at the input width.
    """

    def __init__(self, cin: int, cout: int, seg_channels: int, hidden: int, down: bool):
        super().__init__()
        self.down = down
        self.sft0 = SFTLayer(cin, seg_channels, hidden)
        self.conv0 = nn.Conv2d(cin, cin, 3, 1, 1)
        self.sft1 = SFTLayer(cin, seg_channels, hidden)
        self.conv1 = nn.Conv2d(cin, cout, 3, 2 if down else 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1, bias=False) if (cin != cout) else nn.Identity()

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        h = self.conv0(F.leaky_relu(self.sft0(x, seg), 0.2))
        h = self.conv1(F.leaky_relu(self.sft1(h, seg), 0.2))
        s = self.shortcut(F.avg_pool2d(x, 2) if self.down else x)
        return (h + s) * (1 / math.sqrt(2))


class SynthesisEncoder(nn.Module):
    """One conv and ``n_blocks`` SFT residual blocks. ``forward(x, seg) -> (ws_delta, features)``.

    ``x``: (B, in_channels, R, R); ``seg``: (B, seg_channels, R, R). Blocks halve the resolution until 4x4
    (the remaining blocks stay there). ``features[res]`` is the last feature map at each resolution;
    ``ws_delta`` is (B, num_ws, w_dim) (``latent="w"``: one code repeated).
    """

    def __init__(
        self,
        img_resolution: int,
        in_channels: int,
        seg_channels: int,
        num_ws: int,
        w_dim: int,
        *,
        latent: str,
        n_blocks: int,
        channel_base: int,
        channel_max: int,
        sft_hidden: int,
    ):
        super().__init__()
        if latent not in LATENTS:
            raise ValueError(f"latent must be one of {LATENTS}, got {latent!r}")
        if n_blocks < 1:
            raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
        self.img_resolution, self.num_ws, self.w_dim, self.latent = img_resolution, num_ws, w_dim, latent

        def ch(res: int) -> int:
            return max(8, min(channel_max, channel_base // res))

        res = img_resolution
        self.conv_in = nn.Conv2d(in_channels, ch(res), 3, 1, 1)
        blocks, self.block_res = [], []
        for _ in range(n_blocks):
            down = res > 4
            blocks.append(SFTResBlock(ch(res), ch(res // 2 if down else res), seg_channels, sft_hidden, down))
            res = res // 2 if down else res
            self.block_res.append(res)
        self.blocks = nn.ModuleList(blocks)
        self.out_res, self.out_channels = res, ch(res)
        self.feature_channels = {img_resolution: ch(img_resolution), **{r: ch(r) for r in self.block_res}}
        n_codes = num_ws if latent == "w+" else 1
        self.to_latent = nn.Linear(self.out_channels * res * res, n_codes * w_dim)
        # Start near G's average code: the pretrained decoder first sees in-domain latents.
        nn.init.normal_(self.to_latent.weight, std=0.1 / math.sqrt(self.to_latent.in_features))
        nn.init.zeros_(self.to_latent.bias)

    def forward(self, x: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        h = F.leaky_relu(self.conv_in(x), 0.2)
        feats = {self.img_resolution: h}
        for block, res in zip(self.blocks, self.block_res, strict=True):
            h = block(h, seg)
            feats[res] = h
        codes = self.to_latent(h.flatten(1)).view(x.shape[0], -1, self.w_dim)
        if self.latent == "w":
            codes = codes.expand(-1, self.num_ws, -1)
        return codes, feats


class SynthesisNetwork(nn.Module):
    """The synthesis network: ``forward(image, labelmap) -> image``; ``encode`` gives the latent codes alone.

    ``image``: (B, C, R, R) in [-1, 1]; ``labelmap``: (B, R, R) integer (0 background, k = class id <=
    ``num_classes``). ``generator``: any syndgan generator (``synthesis(ws, skips)``, ``mapping.w_avg``);
    it is the decoder and is trained or frozen by the caller (``requires_grad``). The keywords have no defaults:
    ``SynthSettings.network_kwargs`` gives them (and ``synthesizer.pt`` stores them).
    """

    def __init__(
        self,
        generator: nn.Module,
        num_classes: int,
        palette: list[list[int]] | None = None,
        *,
        seg_encoding: str,
        latent: str,
        n_blocks: int,
        channel_base: int,
        channel_max: int,
        sft_hidden: int,
        skip_min_res: int,
        erase_dilate: int,
    ):
        super().__init__()
        if seg_encoding not in SEG_ENCODINGS:
            raise ValueError(f"seg_encoding must be one of {SEG_ENCODINGS}, got {seg_encoding!r}")
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        palette = palette if palette is not None else [[255, 255, 255]] * num_classes
        if len(palette) != num_classes:
            raise ValueError(f"palette has {len(palette)} colours for {num_classes} classes")
        self.num_classes, self.seg_encoding, self.erase_dilate = num_classes, seg_encoding, erase_dilate
        self.img_resolution, self.img_channels = generator.img_resolution, generator.img_channels
        self.register_buffer("palette", torch.tensor([[0, 0, 0], *palette], dtype=torch.float32) / 255.0)
        self.seg_channels = {"onehot": num_classes, "color": 3, "both": num_classes + 3}[seg_encoding]
        self.encoder = SynthesisEncoder(
            generator.img_resolution,
            generator.img_channels + 1 + self.seg_channels,
            self.seg_channels,
            generator.num_ws,
            generator.w_dim,
            latent=latent,
            n_blocks=n_blocks,
            channel_base=channel_base,
            channel_max=channel_max,
            sft_hidden=sft_hidden,
        )
        self.decoder = generator
        syn = generator.synthesis
        self.skip_resolutions = [r for r in syn.resolutions if r >= skip_min_res and r in self.encoder.feature_channels]
        self.skips = nn.ModuleDict()
        for r in self.skip_resolutions:
            conv = nn.Conv2d(self.encoder.feature_channels[r], syn.channels_at(r), 1)
            nn.init.zeros_(conv.weight)  # the pretrained decoder starts undisturbed; skips grow in
            nn.init.zeros_(conv.bias)
            self.skips[str(r)] = conv

    # ---------------------------------------------------------------- conditioning
    def check_labelmap(self, labelmap: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if labelmap.dim() == 4 and labelmap.shape[1] == 1:
            labelmap = labelmap[:, 0]
        if labelmap.dim() != 3 or labelmap.shape[0] != image.shape[0] or labelmap.shape[-2:] != image.shape[-2:]:
            raise ValueError(f"labelmap {tuple(labelmap.shape)} does not match images {tuple(image.shape)}")
        return labelmap.long()

    def mask(self, labelmap: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float {0, 1}: where a defect is drawn."""
        return (labelmap > 0).unsqueeze(1).float()

    def condition(self, labelmap: torch.Tensor) -> torch.Tensor:
        """The class map as network input (B, seg_channels, H, W); all zeros for an empty map."""
        parts = []
        if self.seg_encoding in ("onehot", "both"):
            onehot = F.one_hot(labelmap.clamp(0, self.num_classes), self.num_classes + 1)[..., 1:]
            parts.append(onehot.permute(0, 3, 1, 2).float())
        if self.seg_encoding in ("color", "both"):
            parts.append(self.palette[labelmap.clamp(0, self.num_classes)].permute(0, 3, 1, 2))
        return torch.cat(parts, dim=1)

    def painted_region(self, labelmap: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) float {0, 1}: the dilated defect region, which the input blanks and the network paints."""
        return dilate(self.mask(labelmap), self.erase_dilate)

    def erase(self, image: torch.Tensor, labelmap: torch.Tensor) -> torch.Tensor:
        """Blank (0 = mid-grey) the painted region."""
        return image * (1.0 - self.painted_region(labelmap))

    # ---------------------------------------------------------------- network
    def encode(self, image: torch.Tensor, labelmap: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """Latent codes ws (B, num_ws, w_dim) and decoder skips {res: features} of the masked input."""
        labelmap = self.check_labelmap(labelmap, image)
        seg = self.condition(labelmap)
        x = torch.cat([self.erase(image, labelmap), self.mask(labelmap), seg], dim=1)
        delta, feats = self.encoder(x, seg)
        ws = self.decoder.mapping.w_avg.to(delta.dtype) + delta
        skips = {r: self.skips[str(r)](feats[r]) for r in self.skip_resolutions}
        return ws, skips

    def forward(self, image: torch.Tensor, labelmap: torch.Tensor, noise_mode: str = "const", return_ws: bool = False):
        ws, skips = self.encode(image, labelmap)
        out = self.decoder.synthesis(ws, skips=skips, noise_mode=noise_mode)
        return (out, ws) if return_ws else out
