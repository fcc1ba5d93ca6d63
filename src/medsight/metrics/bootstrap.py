"""Percentile bootstrap confidence intervals for classification metrics, resampling cases.

A resample is held as per-case counts (B, N) rather than as index lists, so confusion matrices come from
one matrix product and AUCs from one sort of the scores; resamples are processed in chunks to bound memory.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.metrics.classification import (
    check_multilabel, check_single_label, confusion_scores, kappa_from_confusion, multilabel_predictions,
    nan_mean, one_vs_rest_auc, weighted_auc,
)

HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "auc", "f1")
SINGLE_LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "kappa",
                        "kappa_quadratic")
MULTILABEL_METRICS = ("auc", "accuracy", "f1")
_CHUNK_ELEMENTS = 2_000_000  # resamples x cases held at once (16 MB of float64)


def resample_counts(num_cases: int, num_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(num_resamples, num_cases) counts of how often each case is drawn, N draws with replacement each."""
    draws = rng.integers(0, num_cases, size=(num_resamples, num_cases))
    offsets = np.arange(num_resamples)[:, None] * num_cases
    counts = np.bincount((draws + offsets).ravel(), minlength=num_resamples * num_cases)
    return counts.reshape(num_resamples, num_cases).astype(np.float64)


def _single_label_scores(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray, counts: np.ndarray,
                         names: Sequence[str]) -> dict[str, np.ndarray]:
    num_classes = probs.shape[1]
    pairs = np.eye(num_classes * num_classes)[y_true * num_classes + y_pred]  # (N, K*K) one-hot cells
    cm = (counts @ pairs).reshape(-1, num_classes, num_classes)
    scores = confusion_scores(cm)
    out = {name: scores[name] for name in names if name in scores}
    if "kappa" in names:
        out["kappa"] = kappa_from_confusion(cm)
    if "kappa_quadratic" in names:
        out["kappa_quadratic"] = kappa_from_confusion(cm, "quadratic")
    if "auc" in names:
        if num_classes == 2:
            out["auc"] = weighted_auc(probs[:, 1], y_true == 1, counts)
        else:
            out["auc"] = nan_mean(one_vs_rest_auc(y_true, probs, counts))
    return out


def _multilabel_scores(y_true: np.ndarray, probs: np.ndarray, y_pred: np.ndarray, counts: np.ndarray,
                       names: Sequence[str]) -> dict[str, np.ndarray]:
    out = {}
    if "auc" in names:
        per_label = [weighted_auc(probs[:, k], y_true[:, k] == 1, counts) for k in range(probs.shape[1])]
        out["auc"] = nan_mean(np.stack(per_label, axis=-1))
    if "accuracy" in names:
        out["accuracy"] = nan_mean((counts @ (y_pred == y_true)) / counts.sum(axis=1, keepdims=True))
    if "f1" in names:
        true_pos = counts @ ((y_pred == 1) & (y_true == 1))
        denominator = counts @ (y_pred + y_true)
        f1 = np.divide(2 * true_pos, denominator, out=np.full(true_pos.shape, np.nan), where=denominator > 0)
        out["f1"] = nan_mean(f1)
    return out


def bootstrap_ci(y_true: Any, probs: Any, y_pred: Any = None, metric_names: Sequence[str] = HEADLINE_METRICS,
                 n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, list[float] | None]:
    """{metric: [low, high]} percentile intervals over n_boot case resamples (None where never defined).

    Single-label: y_true (N,), probs (N,K), y_pred (N,) (argmax by default). Multi-label: y_true (N,K) 0/1,
    probs (N,K), y_pred (N,K) 0/1 (probability >= 0.5 by default); metrics auc, accuracy, f1 (macro).
    """
    multilabel = np.asarray(y_true).ndim == 2 and np.asarray(y_true).shape[1] > 1
    if multilabel:
        y_true, probs = check_multilabel(y_true, probs)
        y_pred = multilabel_predictions(probs) if y_pred is None else np.asarray(y_pred, np.int64)
        known, score = MULTILABEL_METRICS, _multilabel_scores
    else:
        y_true, probs, y_pred = check_single_label(y_true, probs, y_pred)
        known, score = SINGLE_LABEL_METRICS, _single_label_scores
    unknown = [name for name in metric_names if name not in known]
    if unknown:
        raise MedsightError(None, f"no bootstrap for {', '.join(unknown)}; available: {', '.join(known)}")
    num_cases = len(y_true)
    if num_cases == 0 or n_boot < 1:
        return {name: None for name in metric_names}
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_ELEMENTS // num_cases)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in metric_names}
    for start in range(0, n_boot, chunk):
        counts = resample_counts(num_cases, min(chunk, n_boot - start), rng)
        for name, values in score(y_true, probs, y_pred, counts, metric_names).items():
            samples[name].append(values)
    tail = 100 * (1 - level) / 2
    intervals: dict[str, list[float] | None] = {}
    for name in metric_names:
        values = np.concatenate(samples[name])
        values = values[~np.isnan(values)]
        intervals[name] = None if values.size == 0 else [float(v) for v in np.percentile(values, [tail, 100 - tail])]
    return intervals


def resampled_scores(y_true: Any, probs: Any, y_pred: Any, counts: np.ndarray,
                     metric_names: Sequence[str]) -> dict[str, np.ndarray]:
    """{metric: (B,) values} on the resamples given as per-case counts (B, N); the same counts on two
    models' predictions of the same cases make a paired bootstrap."""
    if np.asarray(y_true).ndim == 2 and np.asarray(y_true).shape[1] > 1:
        y_true, probs = check_multilabel(y_true, probs)
        y_pred = multilabel_predictions(probs) if y_pred is None else np.asarray(y_pred, np.int64)
        return _multilabel_scores(y_true, probs, y_pred, counts, metric_names)
    y_true, probs, y_pred = check_single_label(y_true, probs, y_pred)
    return _single_label_scores(y_true, probs, y_pred, counts, metric_names)
