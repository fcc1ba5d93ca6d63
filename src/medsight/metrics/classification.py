"""Classification metrics from labels and probabilities: single-label (binary, multiclass) and multi-label.

Everything a count can give is computed from confusion matrices that may carry leading batch axes, so the
point estimate and the bootstrap (evaluation/bootstrap.py) share one implementation. A value that is
undefined (a class absent from the labels and the predictions, a single-class AUC) is NaN here and None in
the returned dicts; macro averages skip undefined classes, as scikit-learn does with ``zero_division=np.nan``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError

ECE_BINS = 15


# validation ------------------------------------------------------------------
def check_single_label(y_true: Any, probs: Any, y_pred: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (N,) ints, probabilities (N,K) and predictions (N,) (argmax by default), checked for shape."""
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y_true.shape[0] or probs.shape[1] < 2:
        raise MedsightError(None, f"probabilities of shape {probs.shape} do not match {y_true.shape[0]} labels "
                                  "(expected (N, K) with K >= 2)")
    num_classes = probs.shape[1]
    y_pred = probs.argmax(axis=1) if y_pred is None else np.asarray(y_pred).reshape(-1).astype(np.int64)
    if y_pred.shape != y_true.shape:
        raise MedsightError(None, f"{y_pred.shape[0]} predictions for {y_true.shape[0]} labels")
    for name, labels in (("label", y_true), ("prediction", y_pred)):
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise MedsightError(None, f"a {name} lies outside the {num_classes} classes (0..{num_classes - 1})")
    return y_true, probs, y_pred


def check_multilabel(y_true: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    """Labels (N,K) in {0,1} and probabilities (N,K), checked for shape and values."""
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    if y_true.ndim != 2 or probs.shape != y_true.shape:
        raise MedsightError(None, f"multi-label targets {y_true.shape} and probabilities {probs.shape} "
                                  "must both be (N, K)")
    if not np.isin(y_true, (0, 1)).all():
        raise MedsightError(None, "multi-label targets must be 0 or 1")
    return y_true.astype(np.int64), probs


def class_names_for(num_classes: int, class_names: Sequence[str] | None) -> list[str]:
    """The given names, or "0", "1", ... when none are given."""
    if class_names is None:
        return [str(k) for k in range(num_classes)]
    if len(class_names) != num_classes:
        raise MedsightError(None, f"{len(class_names)} class names for {num_classes} classes")
    return [str(name) for name in class_names]


# counts ----------------------------------------------------------------------
def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K,K) counts, rows the true class and columns the predicted class."""
    pairs = np.asarray(y_true, np.int64) * num_classes + np.asarray(y_pred, np.int64)
    return np.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is zero."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def nan_mean(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over the defined (non-NaN) entries; NaN where none is defined, without a warning."""
    values = np.asarray(values, np.float64)
    defined = ~np.isnan(values)
    return _ratio(np.where(defined, values, 0.0).sum(axis), defined.sum(axis))


def confusion_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class and macro scores from confusion matrices of shape (..., K, K)."""
    cm = np.asarray(cm, np.float64)
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    f1 = _ratio(2 * tp, support + predicted)  # = 2PR/(P+R), and still defined when nothing is predicted
    return {
        "precision_per_class": precision, "recall_per_class": recall, "f1_per_class": f1, "support": support,
        "accuracy": _ratio(tp.sum(axis=-1), support.sum(axis=-1)),
        # balanced accuracy is the mean recall over the classes present in the labels
        "balanced_accuracy": nan_mean(recall), "precision": nan_mean(precision),
        "recall": nan_mean(recall), "f1": nan_mean(f1),
    }


def kappa_from_confusion(cm: np.ndarray, weights: str | None = None) -> np.ndarray:
    """Cohen's kappa of (..., K, K) confusion matrices; weights None, "linear" or "quadratic"."""
    cm = np.asarray(cm, np.float64)
    num_classes = cm.shape[-1]
    rows, cols = np.indices((num_classes, num_classes))
    if weights is None:
        disagreement = (rows != cols).astype(np.float64)
    elif weights == "linear":
        disagreement = np.abs(rows - cols).astype(np.float64)
    elif weights == "quadratic":
        disagreement = ((rows - cols) ** 2).astype(np.float64)
    else:
        raise ValueError(f"unknown kappa weights {weights!r}")
    total = cm.sum(axis=(-2, -1))
    expected = _ratio(cm.sum(axis=-1)[..., :, None] * cm.sum(axis=-2)[..., None, :], total[..., None, None])
    observed_cost = (disagreement * cm).sum(axis=(-2, -1))
    expected_cost = (disagreement * expected).sum(axis=(-2, -1))
    return 1.0 - _ratio(observed_cost, expected_cost)


# ranking ---------------------------------------------------------------------
def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """ROC AUC (Mann-Whitney, ties count one half) of scores for the positive cases.

    weights (B, N) gives each case a multiplicity per row (a bootstrap resample as counts), so one sort
    serves B resamples; the result has shape (B,), or is a 0-d array without weights. NaN where a row
    has no positive or no negative case.
    """
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    single = weights is None
    weights = np.ones((1, scores.shape[0])) if single else np.asarray(weights, np.float64)
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    if sorted_scores.size == 0:
        return np.full(() if single else weights.shape[0], np.nan)
    tie_starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    w = weights[:, order]
    pos = positive[order]
    pos_weight = np.add.reduceat(w * pos, tie_starts, axis=1)
    neg_weight = np.add.reduceat(w * ~pos, tie_starts, axis=1)
    neg_below = np.cumsum(neg_weight, axis=1) - neg_weight
    wins = (pos_weight * (neg_below + 0.5 * neg_weight)).sum(axis=1)
    auc = _ratio(wins, pos_weight.sum(axis=1) * neg_weight.sum(axis=1))
    return auc[0] if single else auc


def one_vs_rest_auc(y_true: np.ndarray, probs: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Per-class one-vs-rest AUC, shape (K,) (or (B, K) with bootstrap weights)."""
    aucs = [weighted_auc(probs[:, k], y_true == k, weights) for k in range(probs.shape[1])]
    return np.stack(aucs, axis=-1)


# calibration -----------------------------------------------------------------
def calibration_bins(confidence: np.ndarray, outcome: np.ndarray,
                     n_bins: int = ECE_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Equal-width bins (lo, hi] on [0, 1]: mean confidence, mean outcome (NaN when empty) and counts."""
    confidence = np.asarray(confidence, np.float64).reshape(-1)
    outcome = np.asarray(outcome, np.float64).reshape(-1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins).astype(np.float64)
    mean_confidence = _ratio(np.bincount(bins, confidence, minlength=n_bins), counts)
    mean_outcome = _ratio(np.bincount(bins, outcome, minlength=n_bins), counts)
    return mean_confidence, mean_outcome, counts


def expected_calibration_error(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): the count-weighted mean |outcome - confidence| over equal-width bins."""
    mean_confidence, mean_outcome, counts = calibration_bins(confidence, outcome, n_bins)
    if counts.sum() == 0:
        return math.nan
    gaps = np.nan_to_num(np.abs(mean_outcome - mean_confidence))
    return float((gaps * counts).sum() / counts.sum())


# public entry points -----------------------------------------------------------
def _value(x: Any) -> float | None:
    """A JSON-ready number: NaN becomes None."""
    x = float(x)
    return None if math.isnan(x) else x


def classification_metrics(y_true: Any, probs: Any, y_pred: Any = None, class_names: Sequence[str] | None = None,
                           ordinal: bool = False) -> dict[str, Any]:
    """Single-label metrics.json content: {"metrics": {...}, "per_class": {name: {...}}}.

    y_true (N,) ints, probs (N,K) rows summing to 1, y_pred (N,) (argmax by default). auc is the positive
    class's (index 1) for K=2 and the one-vs-rest macro otherwise; ece is on the maximum probability.
    """
    y_true, probs, y_pred = check_single_label(y_true, probs, y_pred)
    num_classes = probs.shape[1]
    names = class_names_for(num_classes, class_names)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    scores = confusion_scores(cm)
    per_class_auc = one_vs_rest_auc(y_true, probs)
    auc = per_class_auc[1] if num_classes == 2 else nan_mean(per_class_auc)
    correct = probs.argmax(axis=1) == y_true  # calibration is a property of the probabilities, not the threshold
    metrics: dict[str, Any] = {
        name: _value(scores[name]) for name in ("accuracy", "balanced_accuracy", "precision", "recall", "f1")
    }
    metrics["auc"] = _value(auc)
    metrics["kappa"] = _value(kappa_from_confusion(cm))
    if ordinal:
        metrics["kappa_quadratic"] = _value(kappa_from_confusion(cm, "quadratic"))
    metrics["ece"] = _value(expected_calibration_error(probs.max(axis=1), correct))
    metrics["confusion_matrix"] = cm.tolist()
    per_class = {
        name: {
            "precision": _value(scores["precision_per_class"][k]), "recall": _value(scores["recall_per_class"][k]),
            "f1": _value(scores["f1_per_class"][k]), "auc": _value(per_class_auc[k]),
            "support": int(scores["support"][k]),
        }
        for k, name in enumerate(names)
    }
    return {"metrics": metrics, "per_class": per_class}


def multilabel_predictions(probs: np.ndarray, thresholds: float | Sequence[float] | None = None) -> np.ndarray:
    """0/1 predictions: probability >= the label's threshold (0.5 by default)."""
    probs = np.asarray(probs, np.float64)
    cut = np.broadcast_to(np.asarray(0.5 if thresholds is None else thresholds, np.float64), probs.shape[1:])
    return (probs >= cut).astype(np.int64)


def multilabel_metrics(y_true: Any, probs: Any, thresholds: float | Sequence[float] | None = None,
                       label_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Multi-label metrics: per-label and macro AUC, accuracy and F1 at the thresholds (0.5 by default)."""
    y_true, probs = check_multilabel(y_true, probs)
    names = class_names_for(probs.shape[1], label_names)
    y_pred = multilabel_predictions(probs, thresholds)
    auc = np.array([weighted_auc(probs[:, k], y_true[:, k] == 1) for k in range(probs.shape[1])])
    accuracy = (y_pred == y_true).mean(axis=0) if len(y_true) else np.full(probs.shape[1], np.nan)
    tp = ((y_pred == 1) & (y_true == 1)).sum(axis=0)
    f1 = _ratio(2 * tp, y_pred.sum(axis=0) + y_true.sum(axis=0))
    metrics = {
        "auc": _value(nan_mean(auc)), "accuracy": _value(nan_mean(accuracy)), "f1": _value(nan_mean(f1)),
        "exact_match": _value(np.all(y_pred == y_true, axis=1).mean()) if len(y_true) else None,
        "ece": _value(expected_calibration_error(probs.reshape(-1), y_true.reshape(-1))),
    }
    per_class = {
        name: {"auc": _value(auc[k]), "accuracy": _value(accuracy[k]), "f1": _value(f1[k]),
               "support": int(y_true[:, k].sum())}
        for k, name in enumerate(names)
    }
    return {"metrics": metrics, "per_class": per_class}


def selection_auc(y_true: Any, probs: Any, multilabel: bool = False) -> float | None:
    """The score that picks the epoch, on the scale of AUC whatever the validation split holds.

    Binary: AUC of the positive class. Multi-class: the mean of the one-vs-rest AUCs over the classes present
    in the labels (a class missing from validation is left out rather than turning the score into another
    metric). Multi-label: the mean AUC over labels with both values present. None when no AUC is defined.
    """
    y_true, probs = np.asarray(y_true), np.asarray(probs, np.float64)
    if multilabel:
        auc = np.array([weighted_auc(probs[:, k], y_true[:, k] == 1) for k in range(probs.shape[1])])
    elif probs.shape[1] == 2:
        auc = np.array([weighted_auc(probs[:, 1], y_true.reshape(-1) == 1)])
    else:
        auc = one_vs_rest_auc(y_true.reshape(-1).astype(np.int64), probs)
    return _value(nan_mean(auc))
