"""Where a classify run keeps its files: named here once, for the stage that writes them and for the readers
(the defect studio's scorer). No torch import.

    <out>/<method>-s<seed>/dose-<key>/model.pt   (and history.csv, confusion.csv)

``key`` is a run's dose key (``dose_key``: ``all``, ``30``, ``30_w0.3``); a method that makes no images has
one run, dose 0, key ``0``.
"""

from __future__ import annotations

from pathlib import Path

NO_IMAGES_KEY = "0"  # the one run of a training-time method (none, cutmix): dose 0
REAL_ONLY_METHOD = "none"  # real images only: a scorer with no synthetic bias


def run_name(method: str, seed: int) -> str:
    return f"{method}-s{seed}"


def dose_dir(run_dir: str | Path, key: str) -> Path:
    return Path(run_dir) / f"dose-{key}"


def model_path(run_dir: str | Path, key: str) -> Path:
    """The classifier a run of dose ``key`` saves (``classify.save_model``)."""
    return dose_dir(run_dir, key) / "model.pt"


def real_data_model(out: str | Path, seed: int = 0) -> Path:
    """The real-data classifier under classify's ``out``: method ``none``'s run with ``seed``, its only dose."""
    return model_path(Path(out) / run_name(REAL_ONLY_METHOD, seed), NO_IMAGES_KEY)
