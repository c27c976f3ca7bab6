"""Quality of synthetic images: scorers (the pretraining discriminator's realism, a real-data classifier's
belief in the intended class) shared by the defect studio and the augment stage's quality gate, and the gate
itself (oversample, score, keep the best per class).

Names are imported on first use, so reading the gate's settings schema (``syndgan.quality.settings``) does not
import torch.
"""

from importlib import import_module

_EXPORTS = {
    "GateClassifierSettings": "settings",
    "GateSettings": "settings",
    "ClassifierScorer": "scorers",
    "DiscriminatorScorer": "scorers",
    "train_classifier_scorer": "scorers",
    "apply_gate": "gate",
    "candidate_counts": "gate",
    "check_training_ids": "gate",
    "select_best": "gate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'syndgan.quality' has no attribute {name!r}")
    return getattr(import_module(f"syndgan.quality.{_EXPORTS[name]}"), name)
