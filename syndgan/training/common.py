"""Training plumbing shared by every trainer (pretraining, train_synth, the classifier): seeding, mixed
precision, checkpoints, EMA, metric logs and image grids.

Reproducibility model: the GAN trainers reseed the global RNGs each step from ``(seed, step)`` (``seed_step``),
so a run resumed at step k draws exactly the numbers an uninterrupted run draws, without replaying a sampler.
RNG states are also captured in checkpoints (``capture_rng_state``) for the classifier, which does not reseed.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import io
import logging
import math
import random
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from syndgan.io import atomic_save_image, atomic_torch_save, atomic_write_text, partial_path
from syndgan.models.snapshots import load_checkpoint
from syndgan.seeds import derive_seed  # noqa: F401 (the trainers import it from here)

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- seeding and devices


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_step(seed: int, step: int) -> int:
    """Reseed all global RNGs for one training step; returns the step seed."""
    s = derive_seed(seed, "step", step)
    seed_everything(s)
    return s


def amp_dtype(device: torch.device, enabled: bool = True) -> torch.dtype | None:
    """bfloat16 autocast on CUDA GPUs that support it (no loss scaling needed); None (fp32) elsewhere.

    CPU stays fp32 so same-seed CPU runs are bitwise reproducible.
    """
    if enabled and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else nullcontext()


def configure_determinism(device: torch.device) -> None:
    """Deterministic kernels where cheap (cuDNN); CPU kernels are deterministic already."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


# --------------------------------------------------------------------------- RNG state


def capture_rng_state() -> dict[str, Any]:
    """All global RNG states as weights_only-loadable values (tensors, lists, ints)."""
    py = random.getstate()
    npst = np.random.get_state(legacy=False)
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {
            "key": torch.from_numpy(npst["state"]["key"].astype(np.int64)),
            "pos": int(npst["state"]["pos"]),
            "has_gauss": int(npst["has_gauss"]),
            "gauss": float(npst["gauss"]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": "MT19937",
            "state": {"key": n["key"].numpy().astype(np.uint32), "pos": n["pos"]},
            "has_gauss": n["has_gauss"],
            "gauss": n["gauss"],
        }
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- checkpoints


def to_plain(obj: Any) -> Any:
    """Dataclasses/tuples/Paths -> dicts/lists/str so configs survive ``torch.load(weights_only=True)``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint")


def cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Atomic ``torch.save``: a killed process never leaves a truncated checkpoint under ``path``."""
    return atomic_torch_save(path, state)


def load_resumable(
    path: str | Path,
    settings: dict[str, Any],
    steps: int,
    neutral: frozenset[str],
    identity: dict[str, tuple[Any, str]],
) -> dict[str, Any] | None:
    """The checkpoint at ``path`` when this run may continue it, else None (with a warning saying why).

    It must match every setting outside ``neutral`` (bookkeeping such as ``steps``), every ``identity`` entry
    (checkpoint key -> (expected value, what to call it), e.g. the code digest) and not be past ``steps``.
    """
    path = Path(path)
    if not path.exists():
        return None
    ck = load_checkpoint(path)
    saved = ck.get("settings", {})
    changed = sorted(k for k in (set(saved) | set(settings)) - neutral if saved.get(k) != settings.get(k))
    changed += [label for key, (value, label) in identity.items() if ck.get(key) != value]
    if changed or int(ck["step"]) > steps:
        why = ", ".join(changed) or f"steps {steps} < checkpoint step {ck['step']}"
        log.warning("%s: not resuming (settings changed: %s); training from scratch", path, why)
        return None
    return ck


def optimizer_state_to(opt: torch.optim.Optimizer, device: torch.device) -> None:
    """Move optimizer moments to ``device`` after loading a CPU-mapped checkpoint."""
    for st in opt.state.values():
        for k, v in st.items():
            if isinstance(v, torch.Tensor) and k != "step":
                st[k] = v.to(device)


# --------------------------------------------------------------------------- EMA


class ModelEMA:
    """Exponential moving average of a model's weights (StyleGAN2-ADA schedule).

    ``beta = 0.5 ** (batch / halflife_images)``; with ``rampup`` the half-life is capped at
    ``rampup * images_seen`` so an early EMA is not stuck near the random init. Buffers (BatchNorm
    statistics, ``w_avg``, constant noise) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, halflife_images: float = 10_000.0, rampup: float | None = 0.05):
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.halflife_images = halflife_images
        self.rampup = rampup

    def beta(self, images_seen: int, batch_size: int) -> float:
        half = self.halflife_images
        if self.rampup is not None:
            half = min(half, images_seen * self.rampup)
        return 0.5 ** (batch_size / max(half, 1e-8))

    @torch.no_grad()
    def update(self, model: nn.Module, images_seen: int, batch_size: int) -> float:
        beta = self.beta(images_seen, batch_size)
        for p_ema, p in zip(self.module.parameters(), model.parameters(), strict=True):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)
        return beta

    def state_dict(self) -> dict[str, torch.Tensor]:
        return cpu_state(self.module)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)


# --------------------------------------------------------------------------- logs and images


class CsvLog:
    """A CSV table (DVC plots format) that replaces ``path`` only once complete (``publish``).

    Rows go to ``partial_path(path)`` as they come (follow that file live): ``path`` keeps the previous run's
    table until the run publishes, so a run killed at any point leaves it byte for byte as it was. Keep ``rows``
    in the checkpoint and pass them back on resume: the table then holds every step exactly once, rows logged
    past the checkpoint before a kill included.

    Not DVCLive: a fresh ``Live(dir)`` deletes the previous curves and then appends in place (a kill leaves them
    truncated, the bug this fixes), its ``resume`` continues after the last logged step rather than the
    checkpoint (steps logged twice) and by default it adds its own entries to the project's ``dvc.yaml``.
    """

    def __init__(
        self, path: str | Path, columns: list[str], rows: list[dict[str, str]] | None = None, write: bool = True
    ):
        self.path, self.columns, self.write = Path(path), list(columns), write  # write=False: rows only (rank > 0)
        self.live = partial_path(self.path)
        self.rows: list[dict[str, str]] = [dict(r) for r in rows or []]
        if self.write:  # rewritten, not continued: what a killed run logged after its checkpoint is not kept
            self.live.parent.mkdir(parents=True, exist_ok=True)
            self.live.write_text(self._table(self.rows, header=True), encoding="utf-8")

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append({c: _fmt(row.get(c, "")) for c in self.columns})
        if self.write:  # appended, not rewritten: O(1) a row; a torn last line only ever lands in the live file
            with self.live.open("a", encoding="utf-8") as f:
                f.write(self._table(self.rows[-1:], header=False))

    def publish(self) -> None:
        """The run is complete: its table replaces ``path`` in one rename (from ``rows``, the checkpointed truth)."""
        if not self.write:
            return
        atomic_write_text(self.path, self._table(self.rows, header=True))
        self.live.unlink(missing_ok=True)

    def _table(self, rows: list[dict[str, str]], header: bool) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return str(v)


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) floats in [-1, 1] -> uint8 [0, 255] (clamped)."""
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, padding: int = 2) -> Path:
    """Save (B, C, H, W) images in [-1, 1] as one PNG grid (grayscale stays "L"), atomically."""
    from PIL import Image
    from torchvision.utils import make_grid

    imgs = images_to_uint8(images)
    nrow = nrow or max(1, int(math.ceil(math.sqrt(imgs.shape[0]))))
    grid = make_grid(imgs, nrow=nrow, padding=padding, pad_value=0)  # (3 or C, H, W) uint8
    arr = grid.permute(1, 2, 0).numpy()
    img = Image.fromarray(np.ascontiguousarray(arr[:, :, 0] if imgs.shape[1] == 1 else arr))  # 2-D -> "L", 3-D -> "RGB"
    return atomic_save_image(path, img)


def step_bar(start: int, end: int, total: int, desc: str, enabled: bool):
    """tqdm over training steps ``start..end-1`` of ``total`` (off when not ``enabled``: tests, ranks > 0)."""
    from tqdm import tqdm

    return tqdm(range(start, end), initial=start, total=total, desc=desc, disable=not enabled, unit="step")
