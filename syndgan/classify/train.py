"""Fine-tune an ImageNet EfficientNet on the defect classes, select on val, with a fixed step budget.

Fair comparison rules, identical for every augmentation method:
- the same number of optimizer steps (``steps``, or ``epochs`` of the *real* train set, which does not
  depend on the method), the same batch size, schedule and per-image augmentation (flips, 90-degree turns);
- class imbalance handled by one rule computed on the run's actual training set (real + synthetic):
  ``weighted_ce`` (inverse class frequency weights), ``balanced_sampler`` (batches drawn with
  inverse-frequency probabilities) or ``none``;
- validation every ``eval_every`` steps; the best checkpoint by val macro-F1 (ties: lower val loss) is the
  result; ``patience`` validations without improvement stop the run early.
Batches are drawn at random each step from a seeded generator, so a run resumed from its checkpoint
continues exactly as if it had not been interrupted.
Under ``torchrun`` the model is wrapped in ``DistributedDataParallel``: every rank draws the same global
batch and trains on its share; rank 0 validates, decides early stopping for all and writes checkpoints.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from syndgan.classify.data import ImageSet
from syndgan.classify.metrics import classification_metrics
from syndgan.errors import ConfigError
from syndgan.io import atomic_torch_save
from syndgan.training import distributed
from syndgan.training.common import select_device

log = logging.getLogger("syndgan.classify")

IMBALANCE = ("weighted_ce", "balanced_sampler", "none")


@dataclass
class ClassifierSettings:
    arch: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    resolution: int = 64
    batch_size: int = 16
    steps: int | None = 120
    epochs: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    eval_every: int = 20
    patience: int | None = 3
    imbalance: str = "weighted_ce"
    flips: bool = True
    device: str = "auto"
    threads: int = 1  # used by the caller (process-wide setting)

    def __post_init__(self):
        if self.imbalance not in IMBALANCE:
            raise ConfigError(f"imbalance must be one of {', '.join(IMBALANCE)}, got {self.imbalance!r}")
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("set exactly one of steps and epochs")

    def step_budget(self, n_real_train: int) -> int:
        """Optimizer steps of every run: ``steps``, or ``epochs`` over the real train set."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * n_real_train / self.batch_size))


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


def class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """n / (K * n_c) for present classes (1 for absent ones): each class weighs as much in the loss."""
    counts = torch.bincount(y, minlength=num_classes).float()
    present = counts > 0
    w = torch.ones(num_classes)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return w


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Weighted cross-entropy with soft targets; equals ``F.cross_entropy(weight=...)`` for one-hot targets."""
    logp = F.log_softmax(logits.float(), dim=1)
    w = target if weight is None else target * weight[None]
    return -(w * logp).sum() / w.sum().clamp_min(1e-12)


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


def _lr(step: int, budget: int, settings: ClassifierSettings) -> float:
    """Linear warm-up, then cosine decay to zero at the end of the budget."""
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(1, budget - settings.warmup_steps)
    return settings.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - settings.warmup_steps) / span)))


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, device: torch.device, batch_size: int = 128) -> torch.Tensor:
    """Logits (N, K) on CPU for uint8 images (N, 3, R, R)."""
    model.eval()
    out = [model(normalize(x[i : i + batch_size].to(device))).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, 0))


def evaluate(model, data: ImageSet, class_names, device, weight) -> dict:
    logits = predict(model, data.x, device)
    loss = F.cross_entropy(logits, data.y, weight=weight).item()
    m = classification_metrics(data.y.tolist(), logits.argmax(1).tolist(), class_names)
    return {"loss": loss, "accuracy": m["total_accuracy"], "macro_f1": m["macro_f1"]}


def _fingerprint(train: ImageSet, settings: ClassifierSettings, num_classes: int, seed: int, budget: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([asdict(settings), num_classes, seed, budget], sort_keys=True).encode())
    h.update("\n".join(train.ids).encode())
    h.update(train.y.numpy().tobytes())
    return h.hexdigest()


def train_classifier(
    train: ImageSet,
    val: ImageSet,
    class_names: list[str],
    settings: ClassifierSettings,
    seed: int,
    budget: int,
    mix: Callable | None = None,
    resume_path: str | Path | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train for ``budget`` steps (or until early stopping); return the best model by val macro-F1.

    ``mix(x, y_soft, generator) -> (x, y_soft)``: a training-time augmentation (CutMix) on normalized
    batches. ``resume_path``: checkpoint written at every validation and resumed from when it matches
    this exact run (same data, settings, seed); delete it when the run is done.
    """
    t0 = time.time()
    k = len(class_names)
    dist = distributed.current()  # rank 0 of 1 unless launched by torchrun
    device = distributed.device_for(select_device(settings.device))
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = create_classifier(settings.arch, k, settings.pretrained).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    weight = class_weights(train.y, k) if settings.imbalance == "weighted_ce" else None
    sample_p = None
    if settings.imbalance == "balanced_sampler":
        sample_p = (1.0 / torch.bincount(train.y, minlength=k).clamp_min(1).float())[train.y]
    loss_weight = weight.to(device) if weight is not None else None
    fingerprint = _fingerprint(train, settings, k, seed, budget)

    state = {"step": 0, "best_key": None, "best_step": 0, "bad": 0, "history": []}
    best_state = copy.deepcopy(model.state_dict())
    resumed = 0
    if resume_path is not None and Path(resume_path).is_file():
        ckpt = torch.load(resume_path, map_location="cpu", weights_only=True)
        if ckpt.get("fingerprint") == fingerprint:
            model.load_state_dict(ckpt["model"])
            opt.load_state_dict(ckpt["optimizer"])
            gen.set_state(ckpt["generator"])
            torch.set_rng_state(ckpt["torch_rng"])
            best_state = ckpt["best_model"]
            state = {key: ckpt[key] for key in state}
            state["best_key"] = tuple(state["best_key"]) if state["best_key"] is not None else None
            resumed = state["step"]
            log.info("resumed from step %d (%s)", resumed, resume_path)
        else:
            log.info("ignoring %s: it belongs to another run", resume_path)
    net = model
    if dist.active:
        distributed.barrier()  # every rank has read the resume checkpoint before rank 0 may replace it
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        bs_local = dist.local_batch(min(settings.batch_size, len(train)), "classify.train.batch_size")

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=budget, initial=state["step"], desc="classify", unit="step", disable=not dist.main)
    n = len(train)
    bs = min(settings.batch_size, n)
    running = []
    stopped = False
    while state["step"] < budget and not stopped:
        step = state["step"]
        model.train()
        if sample_p is not None:
            idx = torch.multinomial(sample_p, bs, replacement=True, generator=gen)
        else:
            idx = torch.randperm(n, generator=gen)[:bs]
        if dist.active:  # the same global batch on every rank: keep this rank's share
            idx = dist.shard(idx)
            assert len(idx) == bs_local
        x = train.x[idx]
        if settings.flips:
            x = random_dihedral(x, gen)
        x = normalize(x)
        y = F.one_hot(train.y[idx], k).float()
        if mix is not None:
            x, y = mix(x, y, gen)
        for g in opt.param_groups:
            g["lr"] = _lr(step, budget, settings)
        loss = soft_cross_entropy(net(x.to(device)), y.to(device), loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running.append(loss.item())
        state["step"] = step = step + 1
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        if not (step % settings.eval_every == 0 or step == budget):
            continue
        if not dist.main:
            stopped = distributed.broadcast_object(None)  # rank 0 validates and decides for every rank
        else:
            v = evaluate(model, val, class_names, device, loss_weight.cpu() if loss_weight is not None else None)
            record = {"step": step, "train_loss": sum(running) / len(running), **{f"val_{a}": b for a, b in v.items()}}
            running = []
            state["history"].append(record)
            key = (v["macro_f1"], -v["loss"])
            if state["best_key"] is None or key > state["best_key"]:
                state["best_key"], state["best_step"], state["bad"] = key, step, 0
                best_state = {name: t.detach().cpu().clone() for name, t in model.state_dict().items()}
            else:
                state["bad"] += 1
                stopped = settings.patience is not None and state["bad"] >= settings.patience
            stopped = distributed.broadcast_object(stopped)
            log.debug("step %d: %s", step, record)
            if resume_path is not None and step < budget and not stopped:
                atomic_torch_save(
                    resume_path,
                    {
                        **{key_: state[key_] for key_ in ("step", "best_step", "bad", "history")},
                        "best_key": list(state["best_key"]),
                        "fingerprint": fingerprint,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "generator": gen.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "best_model": best_state,
                    },
                )
    if bar is not None:
        bar.close()
    if dist.active:
        log.info("rank %d: final classifier weights %s", dist.rank, distributed.weights_digest(model))
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(
        model=model,
        history=state["history"],
        best_step=state["best_step"],
        steps_run=state["step"],
        steps_budget=budget,
        seconds=time.time() - t0,
        resumed_from=resumed,
    )
