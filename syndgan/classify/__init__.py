"""Defect classification for comparing augmentation methods: data, fair training, metrics, aggregation.

Names are imported on first use, so reading the settings schema (``syndgan.classify.settings``) does
not import torch.
"""

from syndgan.lazy import lazy_exports

_EXPORTS = {
    "aggregate_runs": "aggregate",
    "markdown_table": "aggregate",
    "table_rows": "aggregate",
    "ImageSet": "data",
    "RealSplits": "data",
    "load_real": "data",
    "load_synthetic": "data",
    "select_dose": "data",
    "classification_metrics": "metrics",
    "confusion_matrix": "metrics",
    "dose_dir": "paths",
    "model_path": "paths",
    "real_data_model": "paths",
    "run_name": "paths",
    "ClassifierSettings": "settings",
    "SyntheticUse": "settings",
    "dose_key": "settings",
    "TrainResult": "train",
    "class_weights": "batches",
    "create_classifier": "train",
    "predict": "train",
    "soft_cross_entropy": "train",
    "train_classifier": "train",
}

__all__ = sorted(_EXPORTS)


__getattr__ = lazy_exports(__name__, _EXPORTS)
