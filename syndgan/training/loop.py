"""The skeleton every training runs in (pretrain, train_synth, the classifier): device and AMP, seeding, DDP
sharding, resume, checkpoints, the loss CSV and the progress bar. What differs lives in a task object (in the
spirit of ProjectedGAN's ``Loss.accumulate_gradients``): ``draw(step)`` the global batch's indices,
``step(step, idx)`` one update returning the values to log, ``after_step(done)`` samples and evaluations, and
whether to stop early.

Per step, in this order (the RNG stream of a seed depends on it): ``seed_step(seed, step)`` when the plan
reseeds, ``draw``; under torchrun each rank keeps its share of the global batch (and, reseeding, continues on
its own stream); ``step``; EMA update. A plan that does not reseed (the classifier) runs on one stream from
``seed`` whose state the checkpoint holds. ``images_per_s`` counts training time only: evaluation, samples and
checkpoints stay out of it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from syndgan.models.snapshots import select_device
from syndgan.training import distributed
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    amp_dtype,
    capture_rng_state,
    configure_determinism,
    cpu_state,
    load_resumable,
    optimizer_state_to,
    restore_rng_state,
    save_checkpoint,
    seed_everything,
    seed_step,
    step_bar,
    to_plain,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What the skeleton reads of a training's settings (``Plan.of`` for the GAN settings, which hold them all)."""

    seed: int
    steps: int  # the run's step budget
    batch_size: int  # the global batch
    device: str = "auto"
    amp: bool = False
    log_every: int = 0  # loss rows every this many steps (0: none)
    checkpoint_every: int = 0  # 0: only where the run ends
    progress: bool = False
    reseed: bool = True  # reseed the global RNGs from (seed, step) each step; False: one stream, checkpointed

    @classmethod
    def of(cls, s) -> Plan:
        return cls(s.seed, s.steps, s.batch_size, s.device, s.amp, s.log_every, s.checkpoint_every, s.progress)


class Task(Protocol):
    net: torch.nn.Module  # the network whose EMA is kept (when there is one)

    def draw(self, step: int) -> Any: ...  # indices of the global batch, from the (seeded) RNG

    def step(self, step: int, idx: Any) -> dict[str, float]: ...  # one update on this rank's share

    def after_step(self, done: int) -> bool: ...  # samples, evaluations; True stops early (all ranks agree)

    def postfix(self, row: dict[str, float]) -> dict[str, str]: ...  # progress-bar values


def setup(plan: Plan, what: str):
    """(dist, device, autocast dtype) for ``plan``, with determinism on and the global RNG seeded."""
    dist = distributed.current()  # rank 0 of 1 unless launched by torchrun
    dist.local_batch(plan.batch_size, f"{what}.batch_size")  # the global batch must split evenly
    device = distributed.device_for(select_device(plan.device))
    configure_determinism(device)
    dtype = amp_dtype(device, plan.amp)
    seed_everything(plan.seed)
    return dist, device, dtype


class TrainerState:
    """A training's resumable state: named parts (modules, EMA, optimizers, D's trainable part, RNG generators),
    the global RNG, settings, identity (code digest, init file, data), history and logs, in one atomic file
    (``path``; None: nothing is resumed or saved)."""

    def __init__(
        self, path: Path | None, s, neutral: frozenset[str], identity: dict[str, tuple[Any, str]], parts: dict
    ):
        self.path, self.s, self.neutral, self.identity, self.parts = path, s, neutral, identity, parts
        self.history: dict[str, Any] = {}
        self.logs: dict[str, Any] = {}

    def resume(self, device: torch.device, history: dict[str, Any], steps: int) -> int:
        """The step to start from (0 without a checkpoint of this run within ``steps``); restores every part and
        the RNG."""
        self.history = dict(history)
        if self.path is None:
            return 0
        ck = load_resumable(self.path, to_plain(self.s), steps, self.neutral, self.identity)
        distributed.barrier()  # every rank has read the checkpoint before rank 0 may replace it
        if ck is None:
            return 0
        for name, part in self.parts.items():
            part.load_state_dict(ck[name])
            if isinstance(part, torch.optim.Optimizer):
                optimizer_state_to(part, device)
        restore_rng_state(ck["rng"])
        self.history, self.logs = dict(ck["history"]), dict(ck["logs"])
        log.info("resuming from %s at step %d", self.path, ck["step"])
        return int(ck["step"])

    def save(self, step: int, logs: dict[str, list]) -> None:
        if self.path is None:
            return
        parts = {n: cpu_state(p) if isinstance(p, torch.nn.Module) else p.state_dict() for n, p in self.parts.items()}
        identity = {key: value for key, (value, _) in self.identity.items()}
        save_checkpoint(
            self.path,
            {
                "step": step,
                **parts,
                "rng": capture_rng_state(),
                "settings": to_plain(self.s),
                **identity,
                "history": self.history,
                "logs": logs,
            },
        )


class Trainable:
    """A projected discriminator's checkpointed part: its heads, not the frozen (reloadable) feature network."""

    def __init__(self, D):
        self.D = D

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.cpu() for k, v in self.D.trainable_state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.D.load_trainable_state_dict(state)


def run_steps(
    task: Task,
    plan: Plan,
    state: TrainerState,
    checkpoint,
    *,
    start: int,
    end: int,
    name: str,
    ema: ModelEMA | None = None,
    loss_log: CsvLog | None = None,
) -> int:
    """Steps ``start..end-1`` of ``plan.steps``; ``checkpoint(done)`` every ``checkpoint_every`` steps and where
    the run ends. Returns the steps done: ``end``, or fewer when the task stopped early."""
    dist = distributed.current()
    history = state.history
    window_s, window_n = 0.0, 0
    done = start
    bar = step_bar(start, end, plan.steps, name, plan.progress and dist.main)
    for step in bar:
        t0 = time.perf_counter()
        if plan.reseed:
            seed_step(plan.seed, step)
        idx = task.draw(step)
        if dist.active:  # every rank drew the same global batch: keep its share (then, reseeding, its own stream)
            idx = dist.shard(idx)
            if plan.reseed:
                seed_step(distributed.rank_seed(plan.seed), step)
        stats = task.step(step, idx)
        if ema is not None:
            ema.update(task.net, (step + 1) * plan.batch_size, plan.batch_size)
        dt = time.perf_counter() - t0
        history["train_seconds"] += dt
        history["train_images"] += plan.batch_size
        window_s, window_n = window_s + dt, window_n + plan.batch_size
        done = step + 1
        if plan.log_every and (done % plan.log_every == 0 or done == plan.steps):
            ips = window_n / max(window_s, 1e-9)
            window_s, window_n = 0.0, 0
            row = {"step": done, **distributed.mean_over_ranks(stats), "images_per_s": ips}
            if loss_log is not None:
                loss_log.append(row)
            bar.set_postfix(**task.postfix(row), ips=f"{ips:.1f}")
        stop = task.after_step(done)
        if stop or (plan.checkpoint_every and done % plan.checkpoint_every == 0) or done == end:
            checkpoint(done)
        if stop:
            break
    bar.close()
    return done
