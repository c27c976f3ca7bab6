"""Defect classification for comparing augmentation methods: data, fair training, metrics, aggregation."""

from syndgan.classify.aggregate import aggregate_runs, markdown_table, table_rows
from syndgan.classify.data import ImageSet, RealSplits, load_real, load_synthetic, select_dose
from syndgan.classify.metrics import classification_metrics, confusion_matrix
from syndgan.classify.train import (
    ClassifierSettings,
    TrainResult,
    class_weights,
    create_classifier,
    predict,
    soft_cross_entropy,
    train_classifier,
)

__all__ = [
    "ClassifierSettings",
    "ImageSet",
    "RealSplits",
    "TrainResult",
    "aggregate_runs",
    "class_weights",
    "classification_metrics",
    "confusion_matrix",
    "create_classifier",
    "load_real",
    "load_synthetic",
    "markdown_table",
    "predict",
    "select_dose",
    "soft_cross_entropy",
    "table_rows",
    "train_classifier",
]
