"""Classification metrics as the paper reports them (per-class and total accuracy) plus macro-F1 and the
two numbers an inspection line cares about: defect recall (a defect predicted as *any* defect) and the
normal false-alarm rate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_classes: int) -> np.ndarray:
    """(K, K) counts, rows = true class, columns = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true, int), np.asarray(y_pred, int)), 1)
    return cm


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], class_names: Sequence[str], normal: int = 0
) -> dict:
    """Fractions in [0, 1]. Per-class accuracy is the class's recall; classes absent from ``y_true`` get
    None there and are left out of macro-F1."""
    k = len(class_names)
    cm = confusion_matrix(y_true, y_pred, k)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm)
    per_class, f1s = {}, []
    for i, name in enumerate(class_names):
        if support[i] == 0:
            per_class[name] = None
            continue
        recall = tp[i] / support[i]
        precision = tp[i] / predicted[i] if predicted[i] else 0.0
        per_class[name] = float(recall)
        f1s.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
    total = int(cm.sum())
    defect = np.arange(k) != normal
    n_defect = int(support[defect].sum())
    n_normal = int(support[normal])
    return {
        "total_accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "defect_recall": float(cm[np.ix_(defect, defect)].sum() / n_defect) if n_defect else None,
        "normal_false_alarm": float(cm[normal, defect].sum() / n_normal) if n_normal else None,
        "per_class_accuracy": per_class,
        "support": {name: int(s) for name, s in zip(class_names, support, strict=True)},
        "confusion": cm.tolist(),
        "classes": list(class_names),
        "n": total,
    }
