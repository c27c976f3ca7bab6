"""The networks the training stages export, read back for inference: ``generator.pt`` and ``discriminator.pt``
(pretrain), ``synthesizer.pt`` (train_synth). Each file carries the kwargs (spec) that rebuild its network, and
is read strictly: a missing key is a ``DataError`` naming the file, never a default. No training code here, so
``syndgan.synthesis.Synthesizer`` and the studio load networks (and pick the device they run on) without
importing a trainer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from syndgan.errors import DataError

DISCRIMINATOR_FORMAT = "syndgan.discriminator/1"
SYNTHESIZER_FORMAT = "syndgan.synthesizer/1"
# ProjectedDiscriminator kwargs a discriminator.pt stores (the feature network's weights file is the reader's).
DISCRIMINATOR_SPEC = (
    "img_resolution", "img_channels", "resize", "diffaug", "proj_channels", "scales",
    "channel_base", "channel_max", "n_classes", "proj_seed",
)  # fmt: skip


def select_device(device: str = "auto") -> torch.device:
    """ "auto": CUDA when present, else CPU. Anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device '{device}' requested but CUDA is not available")
    return dev


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)``; unreadable files raise ``DataError(path, ...)``."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise DataError(path, "checkpoint not found") from None
    except Exception as e:
        raise DataError(path, f"unreadable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise DataError(path, f"checkpoint must hold a dict, got {type(state).__name__}")
    return state


def read_discriminator(path: str | Path) -> dict[str, Any]:
    """A pretrain ``discriminator.pt``: ``{"format", "spec", "D"}`` with every spec key present."""
    state = load_checkpoint(path)
    if state.get("format") != DISCRIMINATOR_FORMAT:
        raise DataError(path, f"not a pretrain discriminator.pt (format {state.get('format')!r})")
    missing = [k for k in DISCRIMINATOR_SPEC if k not in state["spec"]]
    if missing or "D" not in state:
        raise DataError(path, f"incomplete discriminator file (missing {(missing or ['D'])[0]!r})")
    return state


def build_discriminator(spec: dict[str, Any], weights_path: str | Path | None = None, **overrides: Any):
    """The projected discriminator of ``spec`` (frozen ImageNet features), untrained heads; ``overrides`` replace
    spec kwargs (``scales``, ``n_classes``)."""
    from syndgan.models.discriminator import ProjectedDiscriminator

    kw = {k: spec[k] for k in DISCRIMINATOR_SPEC} | overrides
    kw["scales"] = tuple(kw["scales"])
    return ProjectedDiscriminator(pretrained=True, weights_path=weights_path, **kw)


def load_discriminator(path: str | Path, weights_path: str | Path | None = None):
    """The pretrained discriminator of ``discriminator.pt``, every trainable tensor loaded (eval mode)."""
    state = read_discriminator(path)
    D = build_discriminator(state["spec"], weights_path)
    try:
        D.load_trainable_state_dict(state["D"])
    except (KeyError, RuntimeError) as e:
        raise DataError(path, f"weights do not fit the stored spec ({str(e).splitlines()[0]})") from None
    return D.eval().requires_grad_(False)


def check_synthesizer(state: dict[str, Any], where: str | Path = "synthesizer") -> dict[str, Any]:
    """``state`` if it is a complete ``synthesizer.pt`` dict, else a ``DataError`` naming ``where``."""
    if state.get("format") != SYNTHESIZER_FORMAT:
        raise DataError(where, f"not a SyNDGAN synthesizer checkpoint (format {state.get('format')!r})")
    missing = [k for k in ("generator", "network", "state", "classes", "data") if k not in state]
    if missing:
        raise DataError(where, f"incomplete synthesizer file (missing {missing[0]!r})")
    return state


def load_synthesis_network(state: dict[str, Any], where: str | Path = "synthesizer"):
    """The synthesis network (eval mode, no gradients) stored in a ``synthesizer.pt`` dict."""
    from syndgan.models.generators import create_generator
    from syndgan.models.synthesis_network import SynthesisNetwork

    check_synthesizer(state, where)
    spec = dict(state["generator"])
    G = create_generator(spec.pop("name"), **spec)
    kwargs = dict(state["network"])
    num_classes = kwargs.pop("num_classes")
    network = SynthesisNetwork(G, num_classes, [c["color"] for c in state["classes"]], **kwargs)
    try:
        network.load_state_dict(state["state"])
    except RuntimeError as e:
        raise DataError(where, f"weights do not fit the stored network ({str(e).splitlines()[0]})") from None
    return network.eval().requires_grad_(False)
