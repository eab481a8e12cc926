"""Binary classification metrics (scikit-learn), ignoring unlabelled (−1) points.

Lives at the bottom of the house so that training (metrics.json) and the comparison reports use
the same definitions.
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

from cropmeta.errors import InputError

METRIC_NAMES = ["auc_roc", "f1", "precision", "recall", "accuracy", "iou", "kappa", "brier", "ece"]


def _clean(y_true, y_prob) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    y_prob = np.asarray(y_prob, dtype=np.float64).ravel()
    if y_true.shape != y_prob.shape:
        raise InputError(f"labels ({y_true.shape[0]}) and predictions ({y_prob.shape[0]}) differ in length")
    keep = y_true != -1
    y_true, y_prob = y_true[keep], y_prob[keep]
    if not np.isin(y_true, [0, 1]).all():
        raise InputError("labels must be 0, 1 or -1 (unlabelled)")
    if not np.isfinite(y_prob).all():
        raise InputError("predicted probabilities contain NaN or inf")
    return y_true, y_prob


def expected_calibration_error(y_true, y_prob, n_bins: int = 10) -> float:
    """ECE with equal-width bins over [0, 1]: Σ_b (n_b/N) · |mean(y)_b − mean(p)_b|."""
    y_true, y_prob = _clean(y_true, y_prob)
    if len(y_true) == 0:
        return float("nan")
    bins = np.minimum((y_prob * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(y_true[m].mean() - y_prob[m].mean())
    return float(ece)


def binary_metrics(y_true, y_prob, threshold: float = 0.5, n_bins: int = 10) -> dict[str, float]:
    """AUC-ROC, F1/precision/recall/accuracy/IoU/kappa at ``threshold``, Brier score and ECE.

    AUC is NaN when only one class is present among the labelled points."""
    y_true, y_prob = _clean(y_true, y_prob)
    if len(y_true) == 0:
        raise InputError("no labelled points to evaluate (all are −1)")
    y_pred = (y_prob >= threshold).astype(np.int64)
    two = len(np.unique(y_true)) == 2
    return {
        "auc_roc": float(skm.roc_auc_score(y_true, y_prob)) if two else float("nan"),
        "f1": float(skm.f1_score(y_true, y_pred, zero_division=0)),
        "precision": float(skm.precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(skm.recall_score(y_true, y_pred, zero_division=0)),
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "iou": float(skm.jaccard_score(y_true, y_pred, zero_division=0)),
        "kappa": float(skm.cohen_kappa_score(y_true, y_pred)) if len(np.unique(np.r_[y_true, y_pred])) > 1 else 0.0,
        "brier": float(skm.brier_score_loss(y_true, y_prob)),
        "ece": expected_calibration_error(y_true, y_prob, n_bins),
        "n": int(len(y_true)),
        "n_pos": int(y_true.sum()),
    }


def f1_threshold(y_true, y_prob) -> float | None:
    """The probability threshold that maximises F1 on labelled predictions (e.g. a method's
    out-of-fold predictions of its own shots): the midpoint between the chosen score and the next
    lower one; None with fewer than one label of each class."""
    y_true, y_prob = _clean(y_true, y_prob)
    if len(np.unique(y_true)) < 2:
        return None
    prec, rec, thr = skm.precision_recall_curve(y_true, y_prob)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-300), 0.0)[:-1]
    i = int(np.argmax(f1))
    lower = np.max(y_prob[y_prob < thr[i]], initial=-np.inf)
    return float(thr[i] if not np.isfinite(lower) else (thr[i] + lower) / 2)


#: fewer test labels of a class than this: held-out metrics are reported with a warning
SMALL_TEST = 20


def small_test_set(y) -> str | None:
    """A warning when a test set is too small to judge a model by (fewer than :data:`SMALL_TEST`
    labels of a class), else None."""
    import numpy as np

    y = np.asarray(y)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    if min(pos, neg) >= SMALL_TEST:
        return None
    return (f"the held-out metrics come from {pos + neg} test labels ({pos} positive, {neg} negative): too few to "
            f"judge a model by (AUC and F1 from < {SMALL_TEST} labels of a class swing widely); label more test points")
