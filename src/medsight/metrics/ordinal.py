"""Ordered grades (diabetic retinopathy 0..4, tumour grades): recognising them and deciding for them.

Grades are scored with quadratic weighted kappa (QWK), which costs a decision (truth - decided)^2, so
calling grade 4 "grade 3" costs far less than calling it "grade 0". The "qwk" operating point decides by
the expected grade E[g] = sum_k k p_k cut at K-1 thresholds ("grade_cuts"), the cuts tuned on the
validation split for QWK by coordinate search (as in the Kaggle diabetic-retinopathy solutions); plain
argmax is kept when it scores at least as well on validation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medsight.metrics.classification import confusion_matrix, kappa_from_confusion

SEARCH_PASSES = 3


def quadratic_kappa(y_true: Any, y_pred: Any, num_classes: int) -> float:
    cm = confusion_matrix(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64), num_classes)
    return float(np.nan_to_num(kappa_from_confusion(cm, "quadratic")))


def expected_grade(probs: np.ndarray) -> np.ndarray:
    return np.asarray(probs, np.float64) @ np.arange(probs.shape[1], dtype=np.float64)


def grades_from_cuts(probs: np.ndarray, cuts: Sequence[float]) -> np.ndarray:
    """Grade k where cuts[k-1] <= E[g] < cuts[k]."""
    return np.searchsorted(np.asarray(cuts, np.float64), expected_grade(probs), side="right").astype(np.int64)


def choose_grade_cuts(y_true: Any, probs: Any) -> dict[str, Any]:
    """The "qwk" operating point: cuts on the expected grade, or argmax when that is at least as good."""
    y_true, probs = np.asarray(y_true, np.int64), np.asarray(probs, np.float64)
    num_classes = probs.shape[1]
    argmax_score = quadratic_kappa(y_true, probs.argmax(axis=1), num_classes)
    score_of = expected_grade(probs)
    levels = np.unique(score_of)
    candidates = np.unique(np.r_[(levels[1:] + levels[:-1]) / 2, np.arange(num_classes - 1) + 0.5])
    cuts = np.arange(num_classes - 1, dtype=np.float64) + 0.5  # rounding E[g] to the nearest grade
    best = quadratic_kappa(y_true, grades_from_cuts(probs, cuts), num_classes)
    for _ in range(SEARCH_PASSES):
        for k in range(num_classes - 1):
            low = cuts[k - 1] if k > 0 else -np.inf
            high = cuts[k + 1] if k < num_classes - 2 else np.inf
            for value in candidates[(candidates > low) & (candidates < high)]:
                trial = cuts.copy()
                trial[k] = value
                score = quadratic_kappa(y_true, grades_from_cuts(probs, trial), num_classes)
                if score > best + 1e-12:
                    best, cuts = score, trial
    if argmax_score >= best:
        return {"rule": "qwk", "val": {"kappa_quadratic": argmax_score, "decided_by": "argmax"}}
    return {"rule": "qwk", "grade_cuts": [float(c) for c in cuts], "val": {"kappa_quadratic": best}}
