"""Perceptual distances: LPIPS-VGG (paper eq. 5, Tables 2 and 5) or an EfficientNet stand-in; metric and loss.

Both are "normalize each feature vector to unit length over channels, squared difference, weighted sum over
channels, mean over positions, sum over layers" (Zhang et al. 2018):

- ``lpips_vgg``: the real LPIPS v0.1: the ``lpips`` package's VGG16 slices and its learned linear heads (shipped
  inside the package). The VGG16 ImageNet backbone comes from torchvision's file ``vgg16-397923af.pth`` in
  ``$TORCH_HOME/hub/checkpoints/``, loaded here with ``weights_only=True``; the package is built with a
  random trunk (``pnet_rand=True``) so torchvision never tries to download it.
- ``perceptual_effnet``: when that file is absent. The frozen ImageNet EfficientNet-Lite0 feature maps
  (strides 4-32) with equal channel weights: no learned heads, so it is not LPIPS and its values are on
  another scale (each layer term lies in [0, 4]).
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from syndgan.metrics.base import (
    ImageSet,
    Metric,
    MetricInputError,
    MetricUnavailableError,
    count_images,
    default_device,
    iter_uint8_batches,
    uint8_to_unit,
)
from syndgan.metrics.extractors import hub_checkpoints_dir

VGG16_WEIGHT_FILE = "vgg16-397923af.pth"
PERCEPTUAL_KINDS = ("vgg", "effnet")
PERCEPTUAL_NAMES = {"vgg": "lpips_vgg", "effnet": "perceptual_effnet"}


def find_vgg16_weights() -> Path | None:
    """torchvision's ImageNet VGG16 file in the torch hub cache, or None."""
    path = hub_checkpoints_dir() / VGG16_WEIGHT_FILE
    return path if path.is_file() else None


def vgg_unavailable_reason(weights_path: str | Path | None = None) -> str | None:
    """Why ``lpips_vgg`` cannot be built here, or None when it can."""
    if weights_path is not None:
        return None if Path(weights_path).is_file() else f"VGG16 weights file {weights_path} does not exist"
    if find_vgg16_weights() is None:
        return f"no VGG16 ImageNet weights {VGG16_WEIGHT_FILE} in {hub_checkpoints_dir()}"
    return None


def resolve_perceptual(kind: str = "auto", vgg_weights_path: str | Path | None = None) -> str:
    """``auto`` -> ``vgg`` when its weights are present else ``effnet``; explicit ``vgg`` without them raises."""
    if kind == "auto":
        return "vgg" if vgg_unavailable_reason(vgg_weights_path) is None else "effnet"
    if kind not in PERCEPTUAL_KINDS:
        raise ValueError(f"unknown perceptual network {kind!r}; choose from auto, {', '.join(PERCEPTUAL_KINDS)}")
    if kind == "vgg" and (reason := vgg_unavailable_reason(vgg_weights_path)) is not None:
        raise MetricUnavailableError(f"LPIPS-VGG unavailable: {reason}; use the 'effnet' perceptual distance")
    return kind


def _build_lpips_vgg(weights_path: Path) -> nn.Module:
    """``lpips.LPIPS`` (VGG, v0.1 heads from the package) with the VGG16 trunk loaded from ``weights_path``."""
    import lpips

    with warnings.catch_warnings():  # torchvision's deprecation notes about lpips' legacy `pretrained=` call
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(net="vgg", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    src = torch.load(weights_path, map_location="cpu", weights_only=True)
    dst = model.net.state_dict()  # keys "slice<k>.<i>.weight": <i> is the index in torchvision's vgg16.features
    loaded = {}
    for key, tensor in dst.items():
        _, index, param = key.split(".")
        value = src.get(f"features.{index}.{param}")
        if value is None or tuple(value.shape) != tuple(tensor.shape):
            raise MetricUnavailableError(f"{weights_path}: not torchvision VGG16 weights (features.{index}.{param})")
        loaded[key] = value
    model.net.load_state_dict(loaded)
    return model


def _unit_normalize(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """lpips.normalize_tensor's value; vector_norm's backward gives 0, not NaN, where a feature vector is 0
    (ReLU maps of flat regions), which matters when this is a training loss."""
    return f / (torch.linalg.vector_norm(f, dim=1, keepdim=True) + eps)


class PerceptualLoss(nn.Module):
    """Frozen perceptual distance, usable as a loss: ``forward(x, y) -> (B,)`` with gradients to the inputs.

    ``x``, ``y``: float images in [-1, 1], shape (B, C, H, W), C in {1, 3} (gray is repeated to RGB).
    ``kind``: ``auto`` (``vgg`` when its weights are on disk, else ``effnet``), ``vgg`` or ``effnet``.
    ``name`` is ``lpips_vgg`` or ``perceptual_effnet``.
    """

    def __init__(self, kind: str = "auto", vgg_weights_path: str | Path | None = None):
        super().__init__()
        self.kind = resolve_perceptual(kind, vgg_weights_path)
        self.name = PERCEPTUAL_NAMES[self.kind]
        if self.kind == "vgg":
            self.lpips = _build_lpips_vgg(Path(vgg_weights_path) if vgg_weights_path else find_vgg16_weights())
            weights = [lin.model[-1].weight.detach().flatten().clone() for lin in self.lpips.lins]
        else:
            from syndgan.models.features import FeatureNetwork

            self.effnet = FeatureNetwork(pretrained=True)
            weights = [torch.ones(c) for c in self.effnet.channels]
        self.num_layers = len(weights)
        for i, w in enumerate(weights):
            self.register_buffer(f"channel_weight{i}", w)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):  # frozen network, no dropout: always the evaluation graph
        return super().train(False)

    def _channel_weights(self) -> list[torch.Tensor]:
        return [getattr(self, f"channel_weight{i}") for i in range(self.num_layers)]

    @staticmethod
    def _prepare(x: torch.Tensor, what: str) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3) or not x.is_floating_point():
            raise MetricInputError(
                f"{what}: expected float images (B, C, H, W) in [-1, 1] with C in {{1, 3}}, got {x.dtype} {tuple(x.shape)}"
            )
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalized feature maps, one per layer, of images in [-1, 1]."""
        x = self._prepare(x, self.name)
        if self.kind == "vgg":
            maps = self.lpips.net(self.lpips.scaling_layer(x))
        else:
            maps = self.effnet(x)
        return [_unit_normalize(f) for f in maps]

    def distance_from_features(self, fx: list[torch.Tensor], fy: list[torch.Tensor]) -> torch.Tensor:
        """Paired distances (B,) between two equally long feature lists."""
        total = 0.0
        for a, b, w in zip(fx, fy, self._channel_weights(), strict=True):
            total = total + ((a - b).pow(2) * w.view(1, -1, 1, 1)).sum(dim=1).mean(dim=(1, 2))
        return total

    def pairwise_from_features(self, fa: list[torch.Tensor], fb: list[torch.Tensor]) -> torch.Tensor:
        """All-pairs distances (A, B) in float64: ||a||_w^2 + ||b||_w^2 - 2 <a, b>_w per layer, as matmuls."""
        total = 0.0
        for a, b, w in zip(fa, fb, self._channel_weights(), strict=True):
            a, b, w = a.double(), b.double(), w.double().view(1, -1, 1, 1)
            hw = a.shape[2] * a.shape[3]
            wa = (a * w).flatten(1)
            aa = (wa * a.flatten(1)).sum(dim=1) / hw
            bb = ((b * w) * b).flatten(1).sum(dim=1) / hw
            total = total + aa[:, None] + bb[None, :] - 2.0 * (wa @ b.flatten(1).T) / hw
        return total.clamp_min(0.0)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x, y = self._prepare(x, f"{self.name} input"), self._prepare(y, f"{self.name} target")
        if x.shape != y.shape:
            raise MetricInputError(f"{self.name}: input {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
        feats = self.features(torch.cat([x, y]))
        n = x.shape[0]
        return self.distance_from_features([f[:n] for f in feats], [f[n:] for f in feats])


def create_perceptual(kind: str = "auto", vgg_weights_path: str | Path | None = None) -> PerceptualLoss:
    """Factory: ``auto`` | ``vgg`` | ``effnet``; always ImageNet-pretrained (an untrained one is no metric)."""
    return PerceptualLoss(kind, vgg_weights_path)


@functools.lru_cache(maxsize=4)
def cached_perceptual(kind: str, device: str) -> PerceptualLoss:
    return create_perceptual(kind).to(device)


def _feature_batches(distance: PerceptualLoss, images: ImageSet, batch_size: int, device: torch.device):
    for batch in iter_uint8_batches(images, batch_size):
        yield distance.features(uint8_to_unit(batch.to(device)))


@torch.inference_mode()
def paired_distances(
    real: ImageSet,
    fake: ImageSet,
    distance: PerceptualLoss,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> torch.Tensor:
    """Distances (N,) float64 between ``real[i]`` and ``fake[i]`` (same-size images)."""
    device = default_device(device)
    n = count_images(real)
    if count_images(fake) != n:
        raise MetricInputError(f"{distance.name}: {n} real but {count_images(fake)} generated images; pairs needed")
    out: list[torch.Tensor] = []
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []

    def flush() -> None:
        out.append(distance(torch.cat(xs).to(device), torch.cat(ys).to(device)).double().cpu())
        xs.clear()
        ys.clear()

    pairs = zip(iter_uint8_batches(real, 1), iter_uint8_batches(fake, 1), strict=True)
    for i, (x, y) in enumerate(tqdm(pairs, total=n, desc=distance.name, disable=not progress)):
        if x.shape[-2:] != y.shape[-2:]:
            raise MetricInputError(
                f"{distance.name}: pair {i}: real {tuple(x.shape[-2:])} vs generated {tuple(y.shape[-2:])}; "
                "perceptual distances compare same-size images"
            )
        x, y = uint8_to_unit(x).expand(-1, 3, -1, -1), uint8_to_unit(y).expand(-1, 3, -1, -1)
        if xs and (x.shape != xs[0].shape or len(xs) == batch_size):
            flush()
        xs.append(x)
        ys.append(y)
    if xs:
        flush()
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


@torch.inference_mode()
def distance_matrix(
    a: ImageSet,
    b: ImageSet,
    distance: PerceptualLoss,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    cache_bytes: int = 1 << 30,
) -> torch.Tensor:
    """All-pairs distances (len(a), len(b)) float64; all images the same size.

    Features of ``a`` are computed once per chunk; those of ``b`` are kept when they fit in ``cache_bytes``
    (LPIPS-VGG maps are ~8 MB per 128 px image), else recomputed for every chunk of ``a``.
    """
    device = default_device(device)
    n_b = count_images(b)
    if count_images(a) == 0 or n_b == 0:
        return torch.zeros(count_images(a), n_b, dtype=torch.float64)
    b_iter = _feature_batches(distance, b, batch_size, device)
    first = next(b_iter)
    per_image = sum(f[0].numel() * f.element_size() for f in first)
    cached = [first, *b_iter] if per_image * n_b <= cache_bytes else None
    rows = []
    for fa in _feature_batches(distance, a, batch_size, device):
        b_feats = cached if cached is not None else _feature_batches(distance, b, batch_size, device)
        row = []
        for fb in b_feats:
            if fa[0].shape[1:] != fb[0].shape[1:]:
                raise MetricInputError(
                    f"{distance.name}: all-pairs distances need same-size images, got feature maps "
                    f"{tuple(fa[0].shape[1:])} and {tuple(fb[0].shape[1:])}"
                )
            row.append(distance.pairwise_from_features(fa, fb).cpu())
        rows.append(torch.cat(row, dim=1))
    return torch.cat(rows)


class PerceptualMetric(Metric):
    """``lpips_vgg`` / ``perceptual_effnet`` between paired images (reconstruction vs. ground truth).

    Keys: ``<name>`` (mean over pairs) and ``<name>_std``.
    """

    higher_is_better = False

    def __init__(self, kind: str = "auto", **kwargs):
        self.kind = resolve_perceptual(kind)
        self.name = PERCEPTUAL_NAMES[self.kind]
        super().__init__(**kwargs)

    def compute(self, real: ImageSet, fake: ImageSet) -> dict[str, float]:
        if count_images(real) < 1:
            raise MetricInputError(f"{self.name}: no images")
        d = paired_distances(
            real,
            fake,
            cached_perceptual(self.kind, str(self.device)),
            batch_size=self.batch_size,
            device=self.device,
            progress=self.progress,
        )
        std = float(d.std(unbiased=False))
        return {self.name: float(d.mean()), f"{self.name}_std": std}
