"""The skeleton both GAN trainings run in (pretrain, train_synth): device and AMP, seeding, DDP sharding,
resume, checkpoints, the loss CSV and the progress bar. What differs lives in a task object (in the spirit of
ProjectedGAN's ``Loss.accumulate_gradients``): ``draw()`` the global batch's indices, ``step(idx)`` one update
returning the values to log, ``after_step(done)`` samples and evaluations.

Per step, in this order (the RNG stream of a seed depends on it): ``seed_step(seed, step)``, ``draw()``; under
torchrun each rank keeps its share of the global batch and continues on its own stream; ``step``; EMA update.
``images_per_s`` counts training time only: evaluation, samples and checkpoints stay out of it.
"""

from __future__ import annotations

import time
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


class Task(Protocol):
    net: torch.nn.Module  # the network whose EMA is kept

    def draw(self) -> Any: ...  # indices of the global batch, from the (seeded) global RNG

    def step(self, idx: Any) -> dict[str, float]: ...  # one update on this rank's share

    def after_step(self, done: int) -> None: ...  # samples, evaluations (rank 0 decides what to write)

    def postfix(self, row: dict[str, float]) -> dict[str, str]: ...  # progress-bar values


def setup(s, what: str):
    """(dist, device, autocast dtype) for settings ``s``, with determinism on and the global RNG seeded."""
    dist = distributed.current()  # rank 0 of 1 unless launched by torchrun
    dist.local_batch(s.batch_size, f"{what}.batch_size")  # the global batch must split evenly
    device = distributed.device_for(select_device(s.device))
    configure_determinism(device)
    dtype = amp_dtype(device, s.amp)
    seed_everything(s.seed)
    return dist, device, dtype


class TrainerState:
    """A training's resumable state: named parts (modules, EMA, optimizers, D's trainable part), RNG, settings,
    identity (code digest, init file), history and logs, in one atomic ``checkpoints/last.pt``."""

    def __init__(self, path: Path, s, neutral: frozenset[str], identity: dict[str, tuple[Any, str]], parts: dict):
        self.path, self.s, self.neutral, self.identity, self.parts = path, s, neutral, identity, parts
        self.history: dict[str, Any] = {}
        self.logs: dict[str, Any] = {}

    def resume(self, device: torch.device, history: dict[str, Any]) -> int:
        """The step to start from (0 without a usable checkpoint); restores every part and the RNG."""
        self.history = dict(history)
        ck = load_resumable(self.path, to_plain(self.s), self.s.steps, self.neutral, self.identity)
        if ck is None:
            return 0
        for name, part in self.parts.items():
            part.load_state_dict(ck[name])
            if isinstance(part, torch.optim.Optimizer):
                optimizer_state_to(part, device)
        restore_rng_state(ck["rng"])
        self.history, self.logs = dict(ck["history"]), dict(ck["logs"])
        return int(ck["step"])

    def save(self, step: int, logs: dict[str, list]) -> None:
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
    s,
    state: TrainerState,
    ema: ModelEMA,
    loss_log: CsvLog,
    checkpoint,
    *,
    start: int,
    end: int,
    name: str,
) -> None:
    """Steps ``start..end-1`` of ``s.steps``; ``checkpoint(done)`` every ``checkpoint_every`` steps and at ``end``."""
    dist = distributed.current()
    history = state.history
    window_s, window_n = 0.0, 0
    bar = step_bar(start, end, s.steps, name, s.progress and dist.main)
    for step in bar:
        t0 = time.perf_counter()
        seed_step(s.seed, step)
        idx = task.draw()
        if dist.active:  # every rank drew the same global batch: keep its share, then its own RNG stream
            idx = dist.shard(idx)
            seed_step(distributed.rank_seed(s.seed), step)
        stats = task.step(idx)
        ema.update(task.net, (step + 1) * s.batch_size, s.batch_size)
        dt = time.perf_counter() - t0
        history["train_seconds"] += dt
        history["train_images"] += s.batch_size
        window_s, window_n = window_s + dt, window_n + s.batch_size
        done = step + 1
        if s.log_every and (done % s.log_every == 0 or done == s.steps):
            ips = window_n / max(window_s, 1e-9)
            window_s, window_n = 0.0, 0
            row = {"step": done, **distributed.mean_over_ranks(stats), "images_per_s": ips}
            loss_log.append(row)
            bar.set_postfix(**task.postfix(row), ips=f"{ips:.1f}")
        task.after_step(done)
        if (s.checkpoint_every and done % s.checkpoint_every == 0) or done == end:
            checkpoint(done)
    bar.close()
