"""SyNDGAN training (paper eqs. 2-6): the synthesis network ``net`` (SFT encoder + pretrained decoder) against
the pretrained projected discriminator.

    L = w_l1 |net(x, m) - x|_1 + w_adv L_adv(D(net(x, m))) + w_perceptual P(net(x, m), x)
        + w_inversion |Enc(x, m) - Enc(net(x, m), m)|_2^2 [+ w_l1_region |net(x, m) - x|_1 over the painted region]

``x`` is a real training image (defect or normal), ``m`` its label map (empty for normal images); the network
erases the defect region and paints it back from the class map. ``P`` is LPIPS-VGG when torchvision's VGG16 file is in
the torch cache, else the EfficientNet-Lite0 perceptual distance (``syndgan.metrics.perceptual``); its name is
logged and stored. The in-domain inversion term (In-Domain GAN Inversion) compares latent codes, the real
input's code being the (detached) target.

``train_synth(settings, dataset, out_dir, generator_checkpoint=..., ...)`` writes under ``out_dir``:

- ``synthesizer.pt``: what ``syndgan.synthesis.Synthesizer`` loads through ``syndgan.models.snapshots``
  (EMA weights, network spec, classes, data mode, blending defaults).
- ``samples/step_XXXXXXX.png``: rows of real | masked input | reconstruction on fixed images.
- ``losses.csv`` in ``log_dir``. Returns the summary (also ``summary.json``).

With ``resume_path``, the resumable state (the network, its EMA, D's trainable parts, optimizers, step, RNG,
settings, decoder, code and data digests) is written there atomically every ``checkpoint_every`` steps and at the
end; a rerun with the same settings, decoder, code and data resumes from it. The caller chooses the place (the
stage: ``.syndgan/resume/``, outside its DVC outputs) and deletes the file once the outputs are written.

Dataset items: ``{"image": (C, R, R) in [-1, 1], "labelmap": (R, R) int, "label": int}``.
The step and its losses live in ``synth_step``, the reconstruction metrics and grids in ``synth_eval``, the
settings (ablations included) in ``settings``.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from syndgan.errors import ConfigError, DataError
from syndgan.io import atomic_write_json
from syndgan.models import snapshots
from syndgan.models.discriminator import ProjectedDiscriminator
from syndgan.models.generators import create_generator, generator_spec
from syndgan.models.snapshots import SYNTHESIZER_FORMAT, load_checkpoint, read_discriminator
from syndgan.models.synthesis_network import SynthesisNetwork
from syndgan.sources import source_digest
from syndgan.training import distributed
from syndgan.training.common import (
    CsvLog,
    ModelEMA,
    cpu_state,
    derive_seed,
    save_checkpoint,
    seed_everything,
    to_plain,
)
from syndgan.training.loop import Plan, Trainable, TrainerState, run_steps, setup
from syndgan.training.settings import SynthSettings
from syndgan.training.synth_eval import evaluate_reconstruction, save_reconstruction_grid
from syndgan.training.synth_step import (
    SynthLosses,
    check_dataset,
    collate,
    make_optimizers,
    sample_batch,
    set_train_mode,
    train_step,
)

log = logging.getLogger(__name__)

SYNTHESIZER = "synthesizer.pt"
LOSS_COLUMNS = ["step", "loss_d", "loss_g", "l1", "l1_region", "adv", "perceptual", "inversion", "aux", "images_per_s"]


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_pretrained(generator_checkpoint: str | Path) -> dict[str, Any]:
    """The pretraining ``generator.pt``: generator spec, EMA weights and the pretraining settings."""
    state = load_checkpoint(generator_checkpoint)
    for key in ("generator", "G_ema"):
        if key not in state:
            raise DataError(generator_checkpoint, f"not a generator checkpoint (missing '{key}')")
    return state


def build_decoder(pre: dict[str, Any], pretrained: bool, seed: int) -> nn.Module:
    spec = dict(pre["generator"])
    name = spec.pop("name")
    if pretrained:
        G = create_generator(name, **spec)
        G.load_state_dict(pre["G_ema"])
        return G
    torch.manual_seed(derive_seed(seed, "random-decoder") % 2**63)
    return create_generator(name, **spec)


def build_discriminator(
    discriminator_checkpoint: str | Path, s: SynthSettings, n_classes: int
) -> ProjectedDiscriminator:
    """Pretraining's projected D, rebuilt from the spec in its ``discriminator.pt`` (same architecture and fixed
    projections), with its trained heads unless ``pretrained_discriminator`` is off.

    ``d_scales`` keeps only those heads (single scale); the auxiliary classifier gets a fresh head.
    """
    state = read_discriminator(discriminator_checkpoint)
    spec = state["spec"]
    D = snapshots.build_discriminator(
        spec,
        s.feature_weights,
        scales=s.d_scales if s.d_scales is not None else spec["scales"],
        n_classes=n_classes if s.aux_classifier else 0,
    )
    if not s.pretrained_discriminator:
        return D
    own = D.trainable_state_dict()
    src = {k: v for k, v in state["D"].items() if k in own and ".classifier." not in k}
    missing = sorted(k for k in set(own) - set(src) if ".classifier." not in k)
    if missing:
        raise DataError(discriminator_checkpoint, f"discriminator does not match its spec (missing {missing[0]})")
    for k, v in src.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise DataError(discriminator_checkpoint, f"discriminator tensor {k} has shape {tuple(v.shape)}")
    D.load_state_dict(src, strict=False)
    return D


def build_network(G: nn.Module, classes: list[dict], s: SynthSettings) -> SynthesisNetwork:
    return SynthesisNetwork(G, len(classes), [list(c["color"]) for c in classes], **s.network_kwargs())


# Settings that change bookkeeping, not the trained weights: a checkpoint stays resumable across them.
RESUME_NEUTRAL = frozenset({"steps", "checkpoint_every", "sample_every", "log_every", "progress", "device", "amp"})


def train_synth(
    settings: SynthSettings,
    dataset,
    out_dir: str | Path,
    *,
    generator_checkpoint: str | Path,
    discriminator_checkpoint: str | Path,
    classes: list[dict],
    eval_dataset=None,
    data: dict[str, Any] | None = None,
    log_dir: str | Path | None = None,
    max_steps: int | None = None,
    perceptual: nn.Module | None = None,
    resume_path: str | Path | None = None,
    data_digest: str | None = None,
) -> dict[str, Any]:
    """Train (or resume) the synthesis network and return the summary (reconstruction metrics on
    ``eval_dataset`` when given).

    ``classes``: ``[{"name", "id", "color"}, ...]`` (dataset.json), ids 1..K in order. ``data``: how
    images were prepared (``{"mode": "resize"}`` or ``{"mode": "patch", "patch_size": P}``), stored for
    the synthesizer. ``max_steps`` stops early with a checkpoint written, as a kill would (tests).
    ``perceptual``: an already built ``create_perceptual(...)`` to reuse (else one is built from settings).
    ``resume_path``: the resumable state (None: none is kept); ``data_digest``: what identifies the training
    data, so that a state trained on other data is not continued.
    """
    s = settings
    if [int(c["id"]) for c in classes] != list(range(1, len(classes) + 1)):
        raise ConfigError(f"classes must have ids 1..K in order, got {[c['id'] for c in classes]}")
    out = Path(out_dir)
    plan = Plan.of(s)
    dist, device, dtype = setup(plan, "train_synth")

    pre = read_pretrained(generator_checkpoint)
    G = build_decoder(pre, s.pretrained_decoder, s.seed)
    resolution, channels = G.img_resolution, G.img_channels
    labels = check_dataset(dataset, resolution, channels)
    seed_everything(derive_seed(s.seed, "network"))
    network = build_network(G, classes, s)
    network.decoder.requires_grad_(not s.freeze_decoder)
    D = build_discriminator(discriminator_checkpoint, s, len(classes) + 1)
    if (D.img_resolution, D.img_channels) != (resolution, channels):
        raise DataError(
            discriminator_checkpoint, f"judges {D.img_resolution} px images, the decoder makes {resolution}"
        )
    network, D = network.to(device), D.to(device)
    set_train_mode(network, D, s)
    ema = ModelEMA(network, s.ema, s.ema_rampup)
    opt_g, opt_d = make_optimizers(network, D, s)
    losses = SynthLosses(s, perceptual).to(device)
    log.info(
        "SyNDGAN: %s decoder (%s, %s), D %s (scales %s%s), perceptual loss %s, %d training images (%d defect)",
        "pretrained" if s.pretrained_decoder else "random",
        pre["generator"]["name"],
        "frozen" if s.freeze_decoder else "fine-tuned",
        "pretrained" if s.pretrained_discriminator else "random heads",
        list(D.scales),
        ", aux classifier" if s.aux_classifier else "",
        losses.perceptual_name,
        len(labels),
        sum(1 for x in labels if x > 0),
    )

    init_digest = file_digest(generator_checkpoint)
    identity = {
        "init_digest": (init_digest, "pretrained decoder file"),
        "code": (source_digest(__name__), "model/training code"),  # every library file this imports
    }
    if data_digest is not None:
        identity["data"] = (data_digest, "training data")
    parts = {"network": network, "network_ema": ema, "D": Trainable(D), "opt_g": opt_g, "opt_d": opt_d}
    state = TrainerState(None if resume_path is None else Path(resume_path), s, RESUME_NEUTRAL, identity, parts)
    start = state.resume(device, {"train_seconds": 0.0, "train_images": 0}, s.steps)
    history = state.history
    distributed.broadcast_module(network, D, ema.module)  # identical start on every rank
    network_ema = ema.module.to(device)

    # Fixed display images (test images when given): independent of the training RNG stream.
    show_set = eval_dataset if eval_dataset is not None and len(eval_dataset) else dataset
    show_labels = check_dataset(show_set, resolution, channels, "eval dataset")
    show_idx = [i for i, lab in enumerate(show_labels) if lab > 0][:4] + [
        i for i, lab in enumerate(show_labels) if lab == 0
    ][:2]
    seed_everything(derive_seed(s.seed, "show"))  # patch datasets draw windows from the global RNG
    show_x, show_m, _ = collate(show_set, show_idx)

    log_dir = Path(log_dir) if log_dir is not None else out
    loss_log = CsvLog(log_dir / "losses.csv", LOSS_COLUMNS, state.logs.get("losses"), write=dist.main)

    class Step:
        """SyNDGAN's step: a synthesis network then a D update on a batch with ``defect_fraction`` defect images."""

        net = network

        def draw(self, step: int) -> list[int]:
            return sample_batch(labels, s.batch_size, s.defect_fraction)

        def step(self, step: int, idx: list[int]) -> dict[str, float]:
            set_train_mode(network, D, s)
            real, labelmap, lab = collate(dataset, idx)
            real, labelmap, lab = real.to(device), labelmap.to(device), lab.to(device)
            return train_step(network, D, opt_g, opt_d, losses, real, labelmap, lab, device, dtype)

        def after_step(self, done: int) -> bool:
            if dist.main and s.sample_every and (done % s.sample_every == 0 or done == s.steps):
                save_reconstruction_grid(network_ema, show_x, show_m, out / "samples" / f"step_{done:07d}.png", device)
            return False

        def postfix(self, row: dict[str, float]) -> dict[str, str]:
            return {"l1": f"{row['l1']:.3f}", "perc": f"{row['perceptual']:.3f}"}

    def checkpoint(step: int) -> None:
        if dist.main:
            state.save(step, {"losses": loss_log.rows})

    end = s.steps if max_steps is None else min(s.steps, max_steps)
    run_steps(Step(), plan, state, checkpoint, start=start, end=end, name="train_synth", ema=ema, loss_log=loss_log)

    if end < s.steps:
        return {"step": end, "finished": False}
    if dist.active:
        log.info("rank %d: final synthesis network weights %s", dist.rank, distributed.weights_digest(network))
        if not dist.main:  # rank 0 evaluates and writes
            return {"finished": True, "steps": s.steps, "rank": dist.rank}

    summary: dict[str, Any] = {
        "finished": True,
        "steps": s.steps,
        "images": s.steps * s.batch_size,
        "train_seconds": history["train_seconds"],
        "images_per_s": history["train_images"] / max(history["train_seconds"], 1e-9),
        "device": str(device),
        "perceptual": losses.perceptual_name,
        "decoder": pre["generator"]["name"],
        "pretrained_decoder": s.pretrained_decoder,
        "resolution": resolution,
        "channels": channels,
    }
    if eval_dataset is not None and len(eval_dataset):
        t0 = time.perf_counter()
        perceptual = losses.perceptual
        if perceptual is None:
            from syndgan.metrics.perceptual import create_perceptual

            perceptual = create_perceptual(s.perceptual).to(device)
        summary.update(evaluate_reconstruction(network_ema, eval_dataset, device, perceptual))
        summary["eval_seconds"] = time.perf_counter() - t0
        summary["perceptual"] = perceptual.name
    save_reconstruction_grid(network_ema, show_x, show_m, out / "reconstructions.png", device)
    final_sample = out / "samples" / f"step_{s.steps:07d}.png"
    if not final_sample.exists():  # resumed at the last step (or DVC cleared samples/): keep the final grid
        save_reconstruction_grid(network_ema, show_x, show_m, final_sample, device)
    save_synthesizer(out / SYNTHESIZER, network_ema, pre, s, classes, data or {"mode": "resize"}, summary)
    loss_log.publish()  # only now: a killed run leaves the previous curve as it was
    atomic_write_json(out / "summary.json", summary)
    return summary


def save_synthesizer(
    path: Path,
    network: SynthesisNetwork,
    pre: dict[str, Any],
    s: SynthSettings,
    classes: list[dict],
    data: dict[str, Any],
    summary: dict[str, Any],
) -> Path:
    spec = dict(pre["generator"])
    return save_checkpoint(
        path,
        {
            "format": SYNTHESIZER_FORMAT,
            "generator": generator_spec(spec.pop("name"), **spec),
            "network": {"num_classes": len(classes), **s.network_kwargs()},
            "state": cpu_state(network),
            "classes": [
                {"name": str(c["name"]), "id": int(c["id"]), "color": [int(v) for v in c["color"]]} for c in classes
            ],
            "data": to_plain(data),
            "settings": to_plain(s),
            "summary": to_plain({k: v for k, v in summary.items() if not isinstance(v, float) or math.isfinite(v)}),
        },
    )
