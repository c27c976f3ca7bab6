"""Data-parallel training across processes launched by ``torchrun`` (DDP semantics, rank 0 writes).

Every trainer asks ``current()`` for its place in the process group; outside ``torchrun`` that is
rank 0 of 1 and nothing here does anything, so single-process runs are unchanged bit for bit.

Conventions shared by the trainers:
- ``batch_size`` stays the *global* batch; each rank trains on ``local_batch(batch_size)`` images.
- Parameters start identical (``broadcast_module`` from rank 0); gradients are averaged across ranks
  after every backward (``average_gradients``, one flat all-reduce, as StyleGAN2-ADA / ProjectedGAN do
  for their G/D alternation where a ``DistributedDataParallel`` wrapper would see several forwards per
  step). The classifier, a plain one-forward model, uses ``torch.nn.parallel.DistributedDataParallel``.
- Only rank 0 writes files (checkpoints, logs, samples, metrics); every rank reads the same checkpoint
  on resume, so all of them continue from the same state.
- Backend: NCCL when the process has a CUDA device, gloo on CPU (what the tests use).
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
import torch.nn as nn

from syndgan.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """The process that writes outputs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    def local_batch(self, batch_size: int, what: str = "batch_size") -> int:
        """This rank's share of a global batch; the global batch must split evenly."""
        if batch_size % self.world_size:
            raise ConfigError(
                f"{what} {batch_size} does not split over {self.world_size} processes; make it a multiple"
            )
        return batch_size // self.world_size

    def shard(self, items):
        """This rank's slice of a global batch drawn identically on every rank."""
        return items[self.rank :: self.world_size]


def current() -> DistInfo:
    """Rank and world size of the initialised process group (rank 0 of 1 without one)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return DistInfo()
    return DistInfo(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", tdist.get_rank())))


def init_from_env(device: str = "auto") -> DistInfo:
    """Join the process group ``torchrun`` describes (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR/PORT).

    Without ``torchrun`` (WORLD_SIZE unset or 1) this is a no-op returning rank 0 of 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (tdist.is_available() and tdist.is_initialized()):
        return current()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(local_rank)
    # Rank 0 evaluates (FID, validation) while the others wait in their next collective: allow it time.
    tdist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=datetime.timedelta(hours=2))
    info = current()
    log.info("distributed: rank %d of %d (%s)", info.rank, info.world_size, tdist.get_backend())
    return info


def shutdown() -> None:
    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()


def device_for(device: torch.device) -> torch.device:
    """Each rank's own GPU (``cuda:LOCAL_RANK``) under torchrun; ``device`` unchanged otherwise."""
    info = current()
    if info.active and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def rank_seed(seed: int) -> int:
    """Seed for this rank's own random draws (augmentations): ``seed`` itself on rank 0 / single process."""
    from syndgan.seeds import derive_seed

    info = current()
    return seed if info.rank == 0 else derive_seed(seed, "rank", info.rank)


def broadcast_module(*modules: nn.Module) -> None:
    """Copy rank 0's parameters and buffers of ``modules`` to every rank."""
    if not current().active:
        return
    with torch.no_grad():
        for module in modules:
            for t in list(module.parameters()) + list(module.buffers()):
                tdist.broadcast(t.data, src=0)


def average_gradients(params) -> None:
    """Average ``.grad`` over ranks with one all-reduce (params without a gradient contribute zeros)."""
    info = current()
    if not info.active:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    tdist.all_reduce(flat)
    flat /= info.world_size
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Average logged scalars over ranks (same keys everywhere)."""
    info = current()
    if not info.active or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    tdist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank (decisions like early stopping must agree)."""
    if not current().active:
        return obj
    box = [obj]
    tdist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if current().active:
        tdist.barrier()


def weights_digest(module: nn.Module) -> str:
    """Short hash of a module's parameters: equal on every rank when training stayed in sync.

    Buffers are left out: running statistics (BatchNorm, ``w_avg``) follow each rank's own data, and
    rank 0's are the ones saved.
    """
    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
