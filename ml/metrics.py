"""Classification metrics and per-clip loss on numpy arrays (no torch): what inference and imports share.

``confusion`` counts (rows = target, columns = prediction), ``metrics_from_confusion`` turns it into
accuracy, macro-F1 and per-class numbers, ``cross_entropy`` is each row's -log p[target]. ``ml.infer``
re-exports them; ``app.pipeline.import_run`` uses them without loading torch.
"""

from __future__ import annotations

import numpy as np


def confusion(targets: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows = target, columns = prediction."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(targets, dtype=np.int64), np.asarray(preds, dtype=np.int64)), 1)
    return cm


def metrics_from_confusion(cm: np.ndarray, classes: list[str]) -> dict:
    """accuracy, macro_f1, per_class {precision, recall, f1, support} and the confusion list of lists.

    Macro-F1 averages over every class of the run (a class with no support and no predictions
    counts as 0), the same definition the web app and tests use.
    """
    tp = np.diag(cm).astype(float)
    col, row = cm.sum(0), cm.sum(1)
    prec = np.divide(tp, col, out=np.zeros_like(tp), where=col > 0)
    rec = np.divide(tp, row, out=np.zeros_like(tp), where=row > 0)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(tp), where=(prec + rec) > 0)
    return {
        "accuracy": float(tp.sum() / max(1, cm.sum())),
        "macro_f1": float(f1.mean()) if len(f1) else 0.0,
        "per_class": {c: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
                          "support": int(row[i])} for i, c in enumerate(classes)},
        "confusion": cm.astype(int).tolist(),
    }


def classification_metrics(targets: np.ndarray, preds: np.ndarray, classes: list[str]) -> dict:
    """Metrics of integer targets/predictions over ``classes``."""
    return metrics_from_confusion(confusion(targets, preds, len(classes)), classes)


def cross_entropy(probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-row -log p[target], float32 (N,)."""
    p = probs[np.arange(len(targets)), np.asarray(targets, dtype=np.int64)]
    return (-np.log(np.clip(p, 1e-12, 1.0))).astype(np.float32)
