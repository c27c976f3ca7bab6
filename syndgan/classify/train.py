"""Fine-tune an ImageNet EfficientNet on the defect classes with a fixed step budget; select on val.

Fair comparison rules, identical for every augmentation method (settings in ``syndgan.classify.settings``):
- the same number of optimizer steps (``epochs`` of the *real* train set, or ``steps``), batch size,
  schedule and per-image augmentation;
- class imbalance handled by one rule computed on the run's actual training pool (real + synthetic; each
  phase's own pool under ``pretrain``): ``weighted_ce`` (w_c = N / (C n_c)), ``balanced_sampler`` or ``none``;
- synthetic images used by one rule (``SyntheticUse``: their loss weight, their share of every batch, or a
  synthetic-only first part of the budget);
- the best checkpoint by val macro-F1 (ties: lower val loss) among the scheduled validations is the result.
Batches walk through shuffled epochs of the pool (``syndgan.classify.batches``); the shuffle of pool-epoch e
and every random draw are functions of the seed, so a run resumed from its checkpoint continues exactly as
if never interrupted.
It runs in the trainers' skeleton (``syndgan.training.loop``: device, seeding, DDP sharding, resume,
checkpoints, progress) with a classifier step object. Under ``torchrun`` the model is wrapped in
``DistributedDataParallel``: every rank draws the same global batch and trains on its share; rank 0
validates, decides early stopping for all and writes checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from syndgan.classify.batches import batch_indices, mixed_batch_indices, phase_class_weights, phased_batch_indices
from syndgan.classify.data import ImageSet
from syndgan.classify.metrics import classification_metrics
from syndgan.classify.settings import ClassifierSettings, SyntheticUse
from syndgan.errors import ConfigError
from syndgan.sources import source_digest
from syndgan.training import distributed
from syndgan.training.common import cpu_state
from syndgan.training.loop import Plan, TrainerState, run_steps, setup

log = logging.getLogger("syndgan.classify")


@dataclass
class TrainResult:
    model: nn.Module  # best weights (by val), in eval mode
    history: list[dict] = field(default_factory=list)
    best_step: int = 0
    steps_run: int = 0
    steps_budget: int = 0
    seconds: float = 0.0
    resumed_from: int = 0


def create_classifier(arch: str, num_classes: int, pretrained: bool = True) -> nn.Module:
    """timm classifier; ImageNet weights come from the packaged EfficientNet-Lite0 file (no download)."""
    from syndgan.models.features import ARCH, create_efficientnet_lite0

    if arch == ARCH:
        return create_efficientnet_lite0(pretrained=pretrained, num_classes=num_classes)
    if pretrained:
        raise ConfigError(f"classify.train.arch: ImageNet weights are packaged for {ARCH} only; set pretrained: false")
    import timm

    try:
        return timm.create_model(arch, pretrained=False, num_classes=num_classes)
    except RuntimeError as e:
        raise ConfigError(f"classify.train.arch: {e}") from None


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, sample_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Weighted cross-entropy with soft targets; equals ``F.cross_entropy(weight=...)`` for one-hot targets.

    ``sample_weight`` scales each image's term but not the normaliser: an image at weight 0.3 pulls 0.3 as hard."""
    logp = F.log_softmax(logits.float(), dim=1)
    w = target if weight is None else target * weight[None]
    terms = w * logp if sample_weight is None else w * logp * sample_weight[:, None]
    return -terms.sum() / w.sum().clamp_min(1e-12)


def normalize(x: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> [-1, 1], the input convention of tf_efficientnet_lite0."""
    return x.float() / 127.5 - 1.0


def random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped and turned by one of the 8 symmetries of the square."""
    codes = torch.randint(0, 8, (x.shape[0],), generator=generator).tolist()
    out = []
    for img, c in zip(x, codes, strict=True):
        if c & 4:
            img = img.flip(-1)
        out.append(torch.rot90(img, c & 3, dims=(-2, -1)))
    return torch.stack(out)


def random_flips(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image flipped left-right and, independently, up-down with probability 1/2."""
    h, v = (torch.rand(x.shape[0], generator=generator) < 0.5 for _ in range(2))
    x = torch.where(h[:, None, None, None], x.flip(-1), x)
    return torch.where(v[:, None, None, None], x.flip(-2), x)


AUGMENT_FNS = {"flips": random_flips, "dihedral": random_dihedral, "none": None}


def schedule(step: int, budget: int, s: ClassifierSettings) -> tuple[float, float]:
    """(learning rate, Adam beta1) of optimizer step ``step`` (0-based), a pure function of the step.

    ``onecycle`` follows torch's OneCycleLR defaults (start at lr/25, cosine up over ``warmup`` of the
    budget, cosine down to lr/25e4; beta1 cycles 0.95 -> 0.85 -> 0.95); ``cosine`` is a linear warm-up
    then cosine decay to zero at a fixed beta1 of 0.9.
    """
    warm = s.warmup * budget
    if s.schedule == "cosine":
        if step < warm:
            return s.lr * (step + 1) / warm, 0.9
        t = min(1.0, (step - warm) / max(1.0, budget - warm))
        return s.lr * 0.5 * (1 + math.cos(math.pi * t)), 0.9

    def anneal(start: float, end: float, t: float) -> float:
        return end + (start - end) / 2 * (math.cos(math.pi * min(1.0, t)) + 1)

    peak = warm - 1  # torch's phase boundary
    if step <= peak:
        t = step / peak if peak > 0 else 1.0
        return anneal(s.lr / 25, s.lr, t), anneal(0.95, 0.85, t)
    t = (step - peak) / max(1e-9, budget - 1 - peak)
    return anneal(s.lr, s.lr / 25 / 1e4, t), anneal(0.85, 0.95, t)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 128) -> torch.Tensor:
    """Logits (N, K) on CPU for uint8 images (N, 3, R, R)."""
    model.eval()
    out = [
        model(normalize(x[i : i + batch_size]).to(device, memory_format=torch.channels_last)).float().cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros((0, 0))


def evaluate(model, data: ImageSet, class_names, device, weight) -> dict:
    logits = predict(model, data.x, device)
    loss = F.cross_entropy(logits, data.y, weight=weight).item()
    m = classification_metrics(data.y.tolist(), logits.argmax(1).tolist(), class_names)
    return {"loss": loss, "accuracy": m["total_accuracy"], "macro_f1": m["macro_f1"]}


def _fingerprint(train: ImageSet, num_classes: int, seed: int, budget: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([num_classes, seed, budget]).encode())
    h.update("\n".join(train.ids).encode())
    h.update(train.y.numpy().tobytes())
    return h.hexdigest()


class _RandomState:
    """A ``torch.Generator`` as a checkpoint part."""

    def __init__(self, generator: torch.Generator):
        self.generator = generator

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"state": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["state"])


class _Weights:
    """The best weights so far, as a checkpoint part."""

    def __init__(self, state: dict[str, torch.Tensor]):
        self.state = state

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state


# Where a run happens, not what it learns: a checkpoint stays resumable across them.
RESUME_NEUTRAL = frozenset({"device", "threads"})


def train_classifier(
    train: ImageSet,
    val: ImageSet,
    class_names: list[str],
    settings: ClassifierSettings,
    seed: int,
    budget: int | None = None,
    mix: Callable | None = None,
    resume_path: str | Path | None = None,
    progress: bool = False,
    use: SyntheticUse | None = None,
) -> TrainResult:
    """Train for ``budget`` steps (default: the settings' budget for the real images in ``train``), or until
    early stopping; return the best model by val macro-F1.

    ``mix(x, y_soft, generator) -> (x, y_soft)``: a training-time augmentation (CutMix) on normalized
    batches. ``resume_path``: checkpoint written every validation interval and where the run ends, resumed
    from when it belongs to this exact run (same data, settings, seed, code); delete it when the run is done.
    ``use``: how the synthetic images in ``train`` are used (default: one pool, weight 1).
    """
    t0 = time.time()
    s = settings
    k = len(class_names)
    n_real = int((~train.synthetic).sum())
    budget = s.step_budget(n_real) if budget is None else budget
    eval_at = set(s.eval_steps(n_real, budget))
    augment = AUGMENT_FNS[s.augment]
    n = len(train)
    bs = min(s.batch_size, n)
    # Global RNG (dropout) and ``gen`` (sampler, augmentation, mix) run on from the seed without per-step reseeding,
    # as this classifier always has; the checkpoint (every validation interval) holds both states.
    every = s.eval_interval(n_real)
    plan = Plan(seed, budget, bs, s.device, log_every=1, checkpoint_every=every, progress=progress, reseed=False)
    dist, device, _ = setup(plan, "classify.train")  # fp32: the classifier has no AMP setting
    gen = torch.Generator().manual_seed(seed)
    # channels_last: the depthwise convolutions run ~25 % faster on CPU (measured: 1.34 -> 1.00 s a step)
    model = create_classifier(s.arch, k, s.pretrained).to(device, memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=s.weight_decay)
    use = use or SyntheticUse()
    synthetic_idx, real_idx = train.synthetic.nonzero().flatten(), (~train.synthetic).nonzero().flatten()
    streams = "share" if use.share is not None else "pretrain" if use.pretrain is not None else None
    if streams and (not len(synthetic_idx) or not len(real_idx)):
        raise ConfigError(
            f"classify.synthetic: {streams} needs real and synthetic training images, got {len(real_idx)} real "
            f"and {len(synthetic_idx)} synthetic"
        )
    if streams and s.imbalance == "balanced_sampler":
        raise ConfigError(
            f"classify.synthetic: {streams} needs a shuffled pool (imbalance weighted_ce or none, not balanced_sampler)"
        )
    n_pre = use.pretrain_steps(budget)  # steps 0 .. n_pre - 1 draw synthetic images only
    pre_weight = weight = None
    if s.imbalance == "weighted_ce":
        pre_weight, weight = phase_class_weights(train.y, train.synthetic, k, use)  # weight also scores val
    sample_p = None
    if s.imbalance == "balanced_sampler":
        sample_p = (1.0 / torch.bincount(train.y, minlength=k).clamp_min(1).float())[train.y]
    loss_weights = [None if w is None else w.to(device) for w in (pre_weight, weight)]  # [synthetic phase, other]
    sample_weight = None if use.weight == 1 else torch.where(train.synthetic, use.weight, 1.0)

    best = _Weights(cpu_state(model))
    identity = {
        "run": (_fingerprint(train, k, seed, budget), "training images, seed or step budget"),
        "code": (source_digest(__name__), "classifier/training code"),  # every library file this imports
        **({} if use.is_default else {"use": (use.label(), "synthetic-image rule (classify.synthetic)")}),
    }
    parts = {"model": model, "optimizer": opt, "generator": _RandomState(gen), "best": best}
    state = TrainerState(None if resume_path is None else Path(resume_path), s, RESUME_NEUTRAL, identity, parts)
    fresh = {"train_seconds": 0.0, "train_images": 0, "records": [], "running": [], "best_key": None}
    start = state.resume(device, {**fresh, "best_step": 0, "bad": 0, "stopped": False}, budget)
    history = state.history
    net = model
    if dist.active:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def validate(step: int) -> bool:
        """Score val, keep the best weights; True when early stopping says stop."""
        v = evaluate(model, val, class_names, device, weight)
        running = history["running"]
        record = {"step": step, "train_loss": sum(running) / len(running), **{f"val_{a}": b for a, b in v.items()}}
        history["records"].append(record)
        log.debug("step %d: %s", step, record)
        key = (v["macro_f1"], -v["loss"])
        if history["best_key"] is None or key > tuple(history["best_key"]):
            history["best_key"], history["best_step"], history["bad"] = list(key), step, 0
            best.state = cpu_state(model)
            return False
        if step > n_pre:  # patience counts validations after real-image steps only: no run stops before fine-tuning
            history["bad"] += 1
        return s.patience is not None and history["bad"] >= s.patience

    class Step:
        """One-cycle AdamW step on class-weighted CE; batches from shuffled pool epochs (or the balanced sampler)
        with per-image augmentation and the method's batch-time mix (CutMix)."""

        def draw(self, step: int) -> torch.Tensor:
            if sample_p is not None:
                return torch.multinomial(sample_p, bs, replacement=True, generator=gen)
            if use.share is not None:
                return mixed_batch_indices(step, bs, real_idx, synthetic_idx, use.share, seed)
            if use.pretrain is not None:
                return phased_batch_indices(step, bs, real_idx, synthetic_idx, n_pre, seed)
            return batch_indices(step, bs, n, seed)

        def step(self, step: int, idx: torch.Tensor) -> dict[str, float]:
            model.train()
            x = train.x[idx]
            if augment is not None:
                x = augment(x, gen)
            x = normalize(x)
            y = F.one_hot(train.y[idx], k).float()
            if mix is not None:
                x, y = mix(x, y, gen)
            lr, beta1 = schedule(step, budget, s)
            for g in opt.param_groups:
                g["lr"], g["betas"] = lr, (beta1, g["betas"][1])
            sw = None if sample_weight is None else sample_weight[idx].to(device)
            logits = net(x.to(device, memory_format=torch.channels_last))
            loss = soft_cross_entropy(logits, y.to(device), loss_weights[step >= n_pre], sw)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history["running"].append(loss.item())
            return {"loss": history["running"][-1]}

        def after_step(self, done: int) -> bool:
            if done not in eval_at:
                return False
            stop = validate(done) if dist.main else None  # rank 0 validates and decides for every rank
            history["running"] = []
            history["stopped"] = bool(distributed.broadcast_object(stop))
            return history["stopped"]

        def postfix(self, row: dict[str, float]) -> dict[str, str]:
            return {"loss": f"{row['loss']:.3f}"}

    def checkpoint(step: int) -> None:
        if dist.main:
            state.save(step, {})

    end = start if history["stopped"] else budget  # a run that stopped early stays stopped when resumed
    done = run_steps(Step(), plan, state, checkpoint, start=start, end=end, name="classify")
    if dist.active:
        log.info("rank %d: final classifier weights %s", dist.rank, distributed.weights_digest(model))
    model.load_state_dict(best.state)
    model.eval()
    return TrainResult(
        model=model,
        history=history["records"],
        best_step=history["best_step"],
        steps_run=done,
        steps_budget=budget,
        seconds=time.time() - t0,
        resumed_from=start,
    )
