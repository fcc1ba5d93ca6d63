"""Operating points: how probabilities become decisions, chosen on the validation split and stored in state.json.

Rules:
- "argmax": the most probable class (multi-label: every label at 0.5).
- "balanced_accuracy": binary: the threshold on p(class 1) that maximises balanced accuracy on validation
  (the same threshold as Youden's, since balanced accuracy = (J + 1) / 2). Multiclass: the Bayes decision for
  balanced accuracy is argmax_k p(k|x) / prior_k, so the rule adds log-prior offsets -log(prior_k) to the
  log-probabilities; the prior is either the validation class frequencies or the model's mean predicted
  probabilities, and plain argmax (no offsets) is kept unless one of them scores higher on validation.
- "youden": binary: the threshold maximising sensitivity + specificity - 1.
- "sensitivity:0.9": binary: the highest threshold whose validation sensitivity is at least 0.9.
- "qwk": ordered grades: cuts on the expected grade tuned for quadratic kappa (medsight.metrics.ordinal).
Binary rules on multi-label data choose one threshold per label. Among equally good thresholds the one
nearest 0.5 wins, and thresholds are midpoints between neighbouring validation scores so that a test
score equal to a validation score is not decided by a hair.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from medsight.errors import MedsightError
from medsight.metrics.classification import (
    check_multilabel, check_single_label, confusion_matrix, confusion_scores, multilabel_predictions,
)

BINARY_RULES = ("balanced_accuracy", "youden")
_LOG_FLOOR = 1e-12  # keeps log(0) finite for probabilities that underflowed


def _parse_rule(rule: str) -> tuple[str, float | None]:
    """("sensitivity", 0.9) for "sensitivity:0.9", (rule, None) for the others; unknown rules fail."""
    if rule.startswith("sensitivity:"):
        try:
            target = float(rule.split(":", 1)[1])
        except ValueError:
            target = math.nan
        if not 0.0 < target <= 1.0:
            raise MedsightError(None, f"operating point {rule!r}: the sensitivity must be a number in (0, 1]")
        return "sensitivity", target
    if rule not in ("argmax", "qwk", *BINARY_RULES):
        raise MedsightError(None, f"unknown operating point rule {rule!r}; choose argmax, balanced_accuracy, "
                                  "youden, sensitivity:<0..1> or qwk (ordered grades)")
    return rule, None


def _rates(positive: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity and specificity of "score >= t" for each threshold t."""
    pos_scores = np.sort(score[positive])
    neg_scores = np.sort(score[~positive])
    true_pos = len(pos_scores) - np.searchsorted(pos_scores, thresholds, side="left")
    true_neg = np.searchsorted(neg_scores, thresholds, side="left")
    return true_pos / max(len(pos_scores), 1), true_neg / max(len(neg_scores), 1)


def binary_threshold(positive: Any, score: Any, rule: str) -> dict[str, Any]:
    """The threshold on score chosen by a binary rule, with the validation figures it reaches."""
    kind, target = _parse_rule(rule)
    positive = np.asarray(positive).astype(bool).reshape(-1)
    score = np.asarray(score, np.float64).reshape(-1)
    if not positive.any():
        raise MedsightError(None, f"operating point {rule!r} needs positive validation cases; there are none")
    if kind == "sensitivity":
        ranked = np.sort(score[positive])[::-1]
        needed = max(1, math.ceil(target * len(ranked) - 1e-9))
        threshold = float(ranked[needed - 1])
    else:
        if positive.all():
            raise MedsightError(None, f"operating point {rule!r} needs negative validation cases; there are none")
        levels = np.unique(score)
        candidates = np.r_[levels[0], (levels[1:] + levels[:-1]) / 2]
        sensitivity, specificity = _rates(positive, score, candidates)
        youden = sensitivity + specificity - 1.0
        best = np.flatnonzero(youden >= youden.max() - 1e-12)
        threshold = float(candidates[best[np.argmin(np.abs(candidates[best] - 0.5))]])
    sensitivity, specificity = (float(v[0]) for v in _rates(positive, score, np.array([threshold])))
    return {"threshold": threshold, "val": {"sensitivity": sensitivity, "specificity": specificity,
                                            "balanced_accuracy": (sensitivity + specificity) / 2}}


def _offset_candidates(y_true: np.ndarray, probs: np.ndarray) -> list[np.ndarray]:
    """Zero offsets, then -log of the validation class frequencies and of the mean predicted probabilities."""
    num_classes = probs.shape[1]
    label_prior = (np.bincount(y_true, minlength=num_classes) + 1.0) / (len(y_true) + num_classes)
    model_prior = np.clip(probs.mean(axis=0), _LOG_FLOOR, None)
    candidates = [np.zeros(num_classes)]
    for prior in (label_prior, model_prior):
        offsets = -np.log(prior)
        candidates.append(offsets - offsets.mean())  # only differences between classes matter
    return candidates


def _predict_with_offsets(probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return np.argmax(np.log(np.clip(probs, _LOG_FLOOR, None)) + offsets, axis=1)


def choose_operating_point(y_true: Any, probs: Any, rule: str = "argmax") -> dict[str, Any]:
    """Choose a JSON-able operating point on validation labels and probabilities.

    Single-label y_true (N,) with probs (N,K); multi-label y_true (N,K) 0/1 with sigmoid probs (N,K).
    Returns {"rule", ...} plus "threshold" (binary), "log_offsets" (multiclass) or "thresholds" (multi-label),
    and "val" with the figures reached on the validation cases.
    """
    kind, _ = _parse_rule(rule)
    if np.asarray(y_true).ndim == 2 and np.asarray(y_true).shape[1] > 1:
        return _choose_multilabel(y_true, probs, rule)
    y_true, probs, _ = check_single_label(y_true, probs)
    num_classes = probs.shape[1]
    if kind == "argmax":
        return {"rule": rule}
    if kind == "qwk":
        from medsight.metrics.ordinal import choose_grade_cuts

        return choose_grade_cuts(y_true, probs)
    if num_classes == 2:
        return {"rule": rule, "positive_class": 1, **binary_threshold(y_true == 1, probs[:, 1], rule)}
    if kind != "balanced_accuracy":
        raise MedsightError(None, f"operating point {rule!r} needs two classes; this task has {num_classes} "
                                  "(use balanced_accuracy or argmax)")
    scored = []
    for offsets in _offset_candidates(y_true, probs):
        cm = confusion_matrix(y_true, _predict_with_offsets(probs, offsets), num_classes)
        scored.append((float(np.nan_to_num(confusion_scores(cm)["balanced_accuracy"])), offsets))
    best_score = max(score for score, _ in scored)
    offsets = next(offsets for score, offsets in scored if score >= best_score - 1e-12)  # earliest: argmax first
    return {"rule": rule, "log_offsets": [float(v) for v in offsets], "val": {"balanced_accuracy": best_score}}


def _choose_multilabel(y_true: Any, probs: Any, rule: str) -> dict[str, Any]:
    """One threshold per label; a label the rule cannot serve (no positives or negatives) keeps 0.5."""
    y_true, probs = check_multilabel(y_true, probs)
    if rule == "argmax":
        return {"rule": rule, "thresholds": [0.5] * probs.shape[1]}
    thresholds, kept_default = [], []
    for k in range(probs.shape[1]):
        try:
            thresholds.append(binary_threshold(y_true[:, k] == 1, probs[:, k], rule)["threshold"])
        except MedsightError:
            thresholds.append(0.5)
            kept_default.append(k)
    return {"rule": rule, "thresholds": thresholds, "labels_at_default": kept_default}


def apply_operating_point(probs: Any, point: dict[str, Any] | None) -> np.ndarray:
    """Decisions from probabilities: (N,) class indices, or (N,K) 0/1 for a multi-label point."""
    probs = np.asarray(probs, np.float64)
    point = point or {"rule": "argmax"}
    if "thresholds" in point:
        return multilabel_predictions(probs, point["thresholds"])
    if "threshold" in point:
        return (probs[:, 1] >= float(point["threshold"])).astype(np.int64)
    if "log_offsets" in point:
        return _predict_with_offsets(probs, np.asarray(point["log_offsets"], np.float64))
    if "grade_cuts" in point:
        from medsight.metrics.ordinal import grades_from_cuts

        return grades_from_cuts(probs, point["grade_cuts"])
    return probs.argmax(axis=1)
