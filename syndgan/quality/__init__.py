"""Quality of synthetic images: scorers (the pretraining discriminator's realism, a real-data classifier's
belief in the intended class) shared by the defect studio and the augment stage's quality gate, and the gate
itself (oversample, score, keep the best per class).

Names are imported on first use, so reading the gate's settings schema (``syndgan.quality.settings``) does not
import torch.
"""

from syndgan.lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _EXPORTS)
