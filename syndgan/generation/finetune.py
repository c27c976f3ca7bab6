"""Fine-tuning of the pretrained generator, one copy per defect class: the generation-only baseline.

``train_generation(settings, datasets, out_dir, generator_checkpoint=..., discriminator_checkpoint=..., ...)``
starts every class from pretraining's ``generator.pt`` (G_ema weights) and ``discriminator.pt`` (its trained
heads; the frozen EfficientNet features, fixed projections and DiffAugment come from its spec) and runs
pretraining's own step (``syndgan.training.pretrain.train_step``, no auxiliary classifier) on that class's images
only, in the trainer skeleton. The adversarial loss and D's feature weights are pretraining's (settings None:
read from ``generator.pt``; a different explicit value is an error). Under ``out_dir`` it writes:

- ``samples/<class>/step_XXXXXXX.png``: G_ema grids on fixed latents.
- ``generators.pt``: every class's G_ema with the spec, classes and provenance (``syndgan.generation.sampling``).
- ``<log_dir>/<class>.csv``: losses per class (DVC plots). Returns the summary (also ``summary.json``).

``datasets[class]`` items: ``{"image": float (C, R, R) in [-1, 1] at the generator's resolution, "id": str}``
(``syndgan.data.datasets.ProcessedImages``); the ids are recorded as the class's provenance.

With ``resume_dir``, each class's resumable state (G, G_ema, D's heads, optimizers, RNG, settings, digests of the
pretrained files, code and the class's image ids) is ``<resume_dir>/<class>.pt``, written every
``checkpoint_every`` steps and at the end; a rerun skips finished classes and resumes an interrupted one. The
caller chooses the place (the stage: ``.syndgan/resume/``, outside its DVC outputs) and deletes it once the
outputs are written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from syndgan.errors import ConfigError, DataError
from syndgan.generation.sampling import GENERATORS_FORMAT, build_generator
from syndgan.generation.settings import GenerationSettings
from syndgan.io import atomic_write_json
from syndgan.losses import AuxClassifierLoss, create_adversarial_losses
from syndgan.models.snapshots import build_discriminator, load_checkpoint, read_discriminator
from syndgan.sources import source_digest
from syndgan.training import distributed
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    derive_seed,
    save_checkpoint,
    save_image_grid,
    to_plain,
)
from syndgan.training.loop import Plan, Trainable, TrainerState, run_steps, setup
from syndgan.training.pretrain import (  # the same step, log columns and bookkeeping settings as pretraining
    LOSS_COLUMNS,
    RESUME_NEUTRAL,
    make_optimizers,
    train_step,
)

log = logging.getLogger(__name__)

GENERATORS = "generators.pt"


def slug(name: str) -> str:
    """A class name as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_pretrained(path: str | Path) -> dict[str, Any]:
    """Pretraining's ``generator.pt``: the generator spec and its EMA weights."""
    state = load_checkpoint(path)
    missing = [k for k in ("generator", "G_ema") if k not in state]
    if missing:
        raise DataError(path, f"not a pretrain generator.pt (missing {missing[0]!r})")
    return state


# What fine-tuning must share with the pretraining that made the discriminator (its heads learned this loss on
# these features): None takes pretraining's value from generator.pt's settings.
INHERITED = {"loss": "hinge", "feature_weights": None}  # pretraining's defaults, for a file without settings


def as_pretrained(s: GenerationSettings, pre: dict[str, Any], path: str | Path) -> GenerationSettings:
    """``s`` with ``INHERITED`` fields taken from pretraining (``generator.pt`` at ``path``); an explicit value
    that differs is a ``ConfigError`` naming the file."""
    stored = pre.get("settings") or {}
    changes = {}
    for key, default in INHERITED.items():
        theirs, mine = stored.get(key, default), getattr(s, key)
        if mine is None:
            changes[key] = theirs
        elif not _same(key, mine, theirs):
            raise ConfigError(
                f"{key}: {mine!r}, but the pretrained discriminator was trained with {theirs!r} ({path}); "
                "leave it unset (null) to use pretraining's"
            )
    return dataclasses.replace(s, **changes)


def _same(key: str, a: Any, b: Any) -> bool:
    if key == "feature_weights" and a is not None and b is not None:  # a file, however it is spelled
        return Path(a).expanduser().resolve() == Path(b).expanduser().resolve()
    return a == b


def load_discriminator(path: str | Path, s: GenerationSettings):
    """Pretraining's projected D with its trained heads, trainable (the feature network stays frozen)."""
    state = read_discriminator(path)
    D = build_discriminator(state["spec"], s.feature_weights)
    try:
        D.load_trainable_state_dict(state["D"])
    except (KeyError, RuntimeError) as e:
        raise DataError(path, f"weights do not fit the stored spec ({str(e).splitlines()[0]})") from None
    return D


def train_generation(
    settings: GenerationSettings,
    datasets: Mapping[str, Any],
    out_dir: str | Path,
    *,
    generator_checkpoint: str | Path,
    discriminator_checkpoint: str | Path,
    classes: Sequence[dict],
    normal_ids: Sequence[str],
    log_dir: str | Path | None = None,
    max_steps: int | None = None,
    resume_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Fine-tune (or resume) one generator per class of ``datasets`` and return the summary.

    ``classes``: the dataset's ``[{"name", "id", "color"}]``; a class without a dataset (no train-pool image) gets
    no generator. ``normal_ids``: the train-pool normal images the pretrained generator learned from, recorded as
    provenance. ``max_steps`` stops every class after that step with a checkpoint written, as a kill would (tests).
    ``resume_dir``: the classes' resumable states (None: none are kept).
    """
    out = Path(out_dir)
    log_dir = Path(log_dir) if log_dir is not None else out
    pre = read_pretrained(generator_checkpoint)
    s = as_pretrained(settings, pre, generator_checkpoint)
    names = [c["name"] for c in classes]
    unknown = sorted(set(datasets) - set(names))
    if unknown:
        raise DataError(generator_checkpoint, f"no class {unknown[0]!r} among the dataset's classes {names}")
    if len({slug(n) for n in names}) != len(names):  # one checkpoint and sample folder per class
        raise DataError(generator_checkpoint, f"class names {names} collide as file names")
    identity = {
        "init_digest": (file_digest(generator_checkpoint), "pretrained generator file"),
        "disc_digest": (file_digest(discriminator_checkpoint), "pretrained discriminator file"),
        "code": (source_digest(__name__), "model/training code"),  # every library file this imports
    }
    start = _Start(pre, Path(generator_checkpoint), Path(discriminator_checkpoint), identity)
    weights, sources, per_class, logs = {}, {}, {}, []
    finished = True
    for name in names:
        if name not in datasets or len(datasets[name]) == 0:
            log.warning("%s: no train-pool image to fine-tune on; no generator for this class", name)
            continue
        ids = [str(datasets[name][i]["id"]) for i in range(len(datasets[name]))]
        resume = None if resume_dir is None else Path(resume_dir) / f"{slug(name)}.pt"
        result = _finetune_class(s, name, datasets[name], ids, start, out, log_dir, max_steps, resume)
        if result is None:
            finished = False
            continue
        weights[name], per_class[name], loss_log = result
        logs.append(loss_log)
        sources[name] = sorted(ids)
    if not finished:  # stopped early on purpose: the resume states are written, nothing final yet
        return {"finished": False, "step": max_steps}
    if not distributed.current().main:
        return {"finished": True, "classes": per_class}
    summary = {
        "finished": True,
        "steps": s.steps,
        "generator": pre["generator"]["name"],
        "resolution": int(pre["generator"]["img_resolution"]),
        "channels": int(pre["generator"]["img_channels"]),
        "classes": per_class,
    }
    save_checkpoint(
        out / GENERATORS,
        {
            "format": GENERATORS_FORMAT,
            "generator": dict(pre["generator"]),
            "classes": [
                {"name": str(c["name"]), "id": int(c["id"]), "color": [int(v) for v in c["color"]]} for c in classes
            ],
            "state": weights,
            "sources": sources,
            "normal_ids": sorted(str(i) for i in normal_ids),
            "settings": to_plain(s),
            "steps": s.steps,
            "summary": to_plain(summary),
        },
    )
    for loss_log in logs:  # only once every class is done: a killed run leaves the previous curves as they were
        loss_log.publish()
    atomic_write_json(out / "summary.json", summary)
    return summary


@dataclasses.dataclass
class _Start:
    """What every class starts from: pretraining's files (the generator's read once) and the identity a class
    checkpoint must match to be resumed."""

    pre: dict[str, Any]
    generator_path: Path
    discriminator_path: Path
    identity: dict[str, tuple[Any, str]]


def _finetune_class(
    s: GenerationSettings,
    name: str,
    dataset,
    ids: list[str],
    start: _Start,
    out: Path,
    log_dir: Path,
    max_steps: int | None,
    resume: Path | None,
) -> tuple[dict, dict, CsvLog] | None:
    """(G_ema weights, summary, loss log to publish) of class ``name``, or None when stopped before the last
    step."""
    plan = dataclasses.replace(Plan.of(s), seed=derive_seed(s.seed, "class", name) % 2**31)
    dist, device, dtype = setup(plan, "train_generation")
    local_batch = dist.local_batch(s.batch_size)
    G = build_generator(start.pre["generator"], start.pre["G_ema"], start.generator_path)  # pretraining's G_ema
    G = G.to(device).train()
    D = load_discriminator(start.discriminator_path, s).to(device).train()
    if (D.img_resolution, D.img_channels) != (G.img_resolution, G.img_channels):
        raise DataError(
            start.discriminator_path, f"judges {D.img_resolution} px images, the generator makes {G.img_resolution}"
        )
    image = dataset[0]["image"]
    if tuple(image.shape) != (G.img_channels, G.img_resolution, G.img_resolution):
        raise DataError(
            getattr(dataset, "source", name),
            f"{name} images are {tuple(image.shape)}, the generator makes "
            f"{(G.img_channels, G.img_resolution, G.img_resolution)}",
        )
    ema = ModelEMA(G, s.ema, s.ema_rampup)
    opt_g, opt_d = make_optimizers(G, D, s)
    losses = (*create_adversarial_losses(s.loss), AuxClassifierLoss())
    parts = {"G": G, "G_ema": ema, "D": Trainable(D), "opt_g": opt_g, "opt_d": opt_d}
    class_identity = {**start.identity, "class": (name, "class"), "data": (sorted(ids), "fine-tuning images")}
    state = TrainerState(resume, s, RESUME_NEUTRAL, class_identity, parts)
    first = state.resume(device, {"train_seconds": 0.0, "train_images": 0}, s.steps)
    distributed.broadcast_module(G, D, ema.module)  # identical start on every rank
    G_ema = ema.module.to(device)
    z_grid = torch.randn(16, G.z_dim, generator=torch.Generator().manual_seed(derive_seed(s.seed, "eval") % 2**63))
    loss_log = CsvLog(log_dir / f"{slug(name)}.csv", LOSS_COLUMNS, state.logs.get("losses"), write=dist.main)
    samples = out / "samples" / slug(name)

    def grid(done: int) -> None:
        with torch.no_grad():
            save_image_grid(G_ema(z_grid.to(device), noise_mode="const"), samples / f"step_{done:07d}.png")

    class Step:
        """Pretraining's step (a D then a G update) on this class's images and fresh latents."""

        net = G

        def draw(self, step: int) -> torch.Tensor:
            return torch.randint(len(dataset), (s.batch_size,))

        def step(self, step: int, idx: torch.Tensor) -> dict[str, float]:
            real = torch.stack([dataset[int(i)]["image"] for i in idx]).to(device)
            z = torch.randn(local_batch, G.z_dim, device=device)
            labels = torch.zeros(len(idx), dtype=torch.long, device=device)  # no auxiliary classifier here
            return train_step(G, D, opt_g, opt_d, real, labels, z, losses, 0.0, device, dtype)

        def after_step(self, done: int) -> bool:
            if dist.main and s.sample_every and done % s.sample_every == 0:
                grid(done)
            return False

        def postfix(self, row: dict[str, float]) -> dict[str, str]:
            return {"d": f"{row['loss_d']:.3f}", "g": f"{row['loss_g']:.3f}"}

    def checkpoint(step: int) -> None:
        if dist.main:
            state.save(step, {"losses": loss_log.rows})

    end = s.steps if max_steps is None else min(s.steps, max_steps)
    log.info("%s: fine-tuning on %d train-pool images, steps %d..%d of %d", name, len(ids), first, end, s.steps)
    run_steps(
        Step(), plan, state, checkpoint, start=first, end=end, name=f"generation {name}", ema=ema, loss_log=loss_log
    )
    if end < s.steps:
        return None
    if dist.main and not (samples / f"step_{s.steps:07d}.png").exists():  # resumed at the end: the final grid
        grid(s.steps)
    h = state.history
    summary = {
        "train_images": len(ids),
        "train_seconds": h["train_seconds"],
        "images_per_s": h["train_images"] / max(h["train_seconds"], 1e-9),
    }
    return ema.state_dict(), summary, loss_log
