"""Bootstrap confidence intervals: a plain per-resample loop with scikit-learn gives the same intervals."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from medsight.errors import MedsightError
from medsight.metrics.bootstrap import bootstrap_ci
from medsight.metrics.classification import classification_metrics, multilabel_metrics


def binary_case(seed: int = 0, n: int = 120):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.35 + 0.3 * y_true, 0.2), 0, 1)
    probs = np.stack([1 - score, score], axis=1)
    return y_true, probs, (score >= 0.45).astype(int)


def test_intervals_equal_a_plain_loop_over_resamples():
    y_true, probs, y_pred = binary_case()
    n_boot, seed = 200, 3
    ci = bootstrap_ci(y_true, probs, y_pred, ("accuracy", "balanced_accuracy", "f1", "auc", "kappa"), n_boot, seed)
    draws = np.random.default_rng(seed).integers(0, len(y_true), size=(n_boot, len(y_true)))  # the same draws
    scorers = {
        "accuracy": lambda t, p, s: skm.accuracy_score(t, p),
        "balanced_accuracy": lambda t, p, s: skm.balanced_accuracy_score(t, p),
        "f1": lambda t, p, s: skm.f1_score(t, p, average="macro"),
        "auc": lambda t, p, s: skm.roc_auc_score(t, s),
        "kappa": lambda t, p, s: skm.cohen_kappa_score(t, p),
    }
    for name, scorer in scorers.items():
        values = [scorer(y_true[d], y_pred[d], probs[d, 1]) for d in draws]
        assert ci[name] == pytest.approx(list(np.percentile(values, [2.5, 97.5])), abs=1e-9), name


def test_intervals_contain_the_point_estimate_and_are_deterministic():
    y_true, probs, y_pred = binary_case(seed=1, n=200)
    names = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "kappa")
    point = classification_metrics(y_true, probs, y_pred)["metrics"]
    ci = bootstrap_ci(y_true, probs, y_pred, names, n_boot=1000, seed=0)
    for name in names:
        low, high = ci[name]
        assert low < point[name] < high, name
        assert high - low < 0.3, name  # 200 cases: a few points wide, not the whole range
    assert bootstrap_ci(y_true, probs, y_pred, names, n_boot=1000, seed=0) == ci
    assert bootstrap_ci(y_true, probs, y_pred, names, n_boot=1000, seed=1) != ci


def test_multiclass_and_multilabel_intervals():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 3, 150)
    probs = rng.dirichlet(np.ones(3), 150)
    probs[np.arange(150), y_true] += 0.3
    probs /= probs.sum(axis=1, keepdims=True)
    point = classification_metrics(y_true, probs, ordinal=True)["metrics"]
    ci = bootstrap_ci(y_true, probs, None, ("auc", "kappa_quadratic"), n_boot=300)
    assert ci["auc"][0] < point["auc"] < ci["auc"][1]
    assert ci["kappa_quadratic"][0] < point["kappa_quadratic"] < ci["kappa_quadratic"][1]

    labels = (rng.random((150, 3)) < 0.4).astype(int)
    scores = np.clip(0.4 * labels + 0.6 * rng.random((150, 3)), 0, 1)
    point = multilabel_metrics(labels, scores)["metrics"]
    ci = bootstrap_ci(labels, scores, None, ("auc", "accuracy", "f1"), n_boot=300)
    for name in ("auc", "accuracy", "f1"):
        assert ci[name][0] < point[name] < ci[name][1], name


def test_undefined_and_unknown_metrics():
    probs = np.array([[0.3, 0.7], [0.2, 0.8]])
    assert bootstrap_ci([1, 1], probs, None, ("auc",), n_boot=50)["auc"] is None  # one class only: AUC undefined
    assert bootstrap_ci(np.zeros(0, int), np.zeros((0, 2)), None, ("accuracy",))["accuracy"] is None
    with pytest.raises(MedsightError, match="no bootstrap for dice"):
        bootstrap_ci([0, 1], probs, None, ("dice",))
