"""Classification metrics and operating points: hand-computed cases and scikit-learn on random inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from medsight.errors import MedsightError
from medsight.metrics.classification import (
    classification_metrics, confusion_matrix, expected_calibration_error, kappa_from_confusion, multilabel_metrics,
    weighted_auc,
)
from medsight.metrics.operating_point import apply_operating_point, choose_operating_point


def softmax_probs(rng: np.random.Generator, labels: np.ndarray, num_classes: int, signal: float = 1.5) -> np.ndarray:
    """Noisy probabilities that lean towards the true class."""
    logits = rng.normal(0, 1, (len(labels), num_classes))
    logits[np.arange(len(labels)), labels] += signal
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


# hand-computed cases ---------------------------------------------------------
def test_binary_hand_computed():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]])
    out = classification_metrics(y_true, probs, y_pred, ["normal", "lesion"])
    m = out["metrics"]
    assert m["confusion_matrix"] == [[1, 1], [0, 2]]
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0) / 2)
    assert m["precision"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert m["recall"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx((2 / 3 + 0.8) / 2)
    # observed agreement 0.75, chance agreement (2*1 + 2*3) / 16 = 0.5
    assert m["kappa"] == pytest.approx(0.5)
    # positive-class scores 0.1, 0.4 (negatives) vs 0.35, 0.8: 3 of 4 pairs ordered
    assert m["auc"] == pytest.approx(0.75)
    assert out["per_class"]["normal"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "auc": 0.75,
                                                        "support": 2})


def test_auc_ties_count_one_half():
    assert float(weighted_auc(np.array([0.5, 0.5]), np.array([False, True]))) == pytest.approx(0.5)
    assert float(weighted_auc(np.array([0.2, 0.5, 0.5]), np.array([False, False, True]))) == pytest.approx(0.75)


def test_quadratic_kappa_hand_computed():
    cm = confusion_matrix(np.array([0, 1, 2]), np.array([0, 2, 2]), 3)
    # observed weighted disagreement 1; expected (row x column sums / 3, weights (i-j)^2) = 8/3 + 1 + 4/3 = 5
    assert float(kappa_from_confusion(cm, "quadratic")) == pytest.approx(1 - 1 / 5)
    out = classification_metrics([0, 1, 2], np.eye(3)[[0, 2, 2]], ordinal=True)
    assert out["metrics"]["kappa_quadratic"] == pytest.approx(0.8)
    assert "kappa_quadratic" not in classification_metrics([0, 1, 2], np.eye(3)[[0, 2, 2]])["metrics"]


def test_ece_hand_computed():
    # bin of 0.9: accuracy 0.5 (gap 0.4); bin of 0.6: accuracy 1.0 (gap 0.4)
    assert expected_calibration_error(np.array([0.9, 0.9, 0.6, 0.6]), np.array([1, 0, 1, 1])) == pytest.approx(0.4)
    assert expected_calibration_error(np.array([0.25, 0.75]), np.array([0, 1]), n_bins=2) == pytest.approx(0.25)


def test_absent_class_is_undefined_and_skipped_by_macro_means():
    probs = np.array([[0.8, 0.1, 0.1], [0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    out = classification_metrics([0, 0, 1], probs)
    assert out["per_class"]["2"]["precision"] is None and out["per_class"]["2"]["auc"] is None
    assert out["metrics"]["precision"] == pytest.approx(1.0)
    assert out["metrics"]["balanced_accuracy"] == pytest.approx(1.0)


def test_bad_shapes_raise_one_line_errors():
    with pytest.raises(MedsightError, match="do not match"):
        classification_metrics([0, 1, 1], np.full((2, 2), 0.5))
    with pytest.raises(MedsightError, match="outside"):
        classification_metrics([0, 3], np.full((2, 2), 0.5))
    with pytest.raises(MedsightError, match="0 or 1"):
        multilabel_metrics([[0, 2]], [[0.1, 0.2]])


# against scikit-learn on random inputs -----------------------------------------
@pytest.mark.parametrize("num_classes,seed", [(2, 0), (2, 1), (3, 2), (5, 3), (5, 4)])
def test_single_label_metrics_match_sklearn(num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, num_classes, 150)
    probs = softmax_probs(rng, y_true, num_classes)
    y_pred = np.where(rng.random(150) < 0.2, rng.integers(0, num_classes, 150), probs.argmax(1))
    assert set(y_true) == set(y_pred) == set(range(num_classes))  # macro means then agree with sklearn's
    m = classification_metrics(y_true, probs, y_pred, ordinal=True)["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y_true, y_pred, average="macro"))
    assert m["recall"] == pytest.approx(skm.recall_score(y_true, y_pred, average="macro"))
    assert m["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    expected_auc = (skm.roc_auc_score(y_true, probs[:, 1]) if num_classes == 2
                    else skm.roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))
    assert m["auc"] == pytest.approx(expected_auc)
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(y_true, y_pred))
    assert m["kappa_quadratic"] == pytest.approx(skm.cohen_kappa_score(y_true, y_pred, weights="quadratic"))
    cm = confusion_matrix(y_true, y_pred, num_classes)
    assert float(kappa_from_confusion(cm, "linear")) == pytest.approx(skm.cohen_kappa_score(y_true, y_pred, weights="linear"))
    assert m["confusion_matrix"] == skm.confusion_matrix(y_true, y_pred, labels=range(num_classes)).tolist()


def test_auc_with_ties_matches_sklearn():
    rng = np.random.default_rng(7)
    y_true = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.5 + 0.3 * y_true, 1)  # coarse scores: many ties
    assert float(weighted_auc(scores, y_true == 1)) == pytest.approx(skm.roc_auc_score(y_true, scores))


def test_multilabel_metrics_match_sklearn():
    rng = np.random.default_rng(5)
    y_true = (rng.random((120, 4)) < [0.5, 0.3, 0.2, 0.6]).astype(int)
    probs = np.clip(0.35 * y_true + rng.random((120, 4)) * 0.65, 0, 1)
    out = multilabel_metrics(y_true, probs, thresholds=0.5, label_names=list("abcd"))
    y_pred = (probs >= 0.5).astype(int)
    aucs = [skm.roc_auc_score(y_true[:, k], probs[:, k]) for k in range(4)]
    accuracies = [skm.accuracy_score(y_true[:, k], y_pred[:, k]) for k in range(4)]
    f1s = skm.f1_score(y_true, y_pred, average=None)
    for k, name in enumerate("abcd"):
        assert out["per_class"][name]["auc"] == pytest.approx(aucs[k])
        assert out["per_class"][name]["accuracy"] == pytest.approx(accuracies[k])
        assert out["per_class"][name]["f1"] == pytest.approx(f1s[k])
    assert out["metrics"]["auc"] == pytest.approx(skm.roc_auc_score(y_true, probs, average="macro"))
    assert out["metrics"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert out["metrics"]["exact_match"] == pytest.approx(skm.accuracy_score(y_true, y_pred))


# operating points ---------------------------------------------------------------
def test_balanced_accuracy_threshold_separable_hand_case():
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7])
    probs = np.stack([1 - scores, scores], axis=1)
    point = choose_operating_point([0, 0, 0, 1, 1], probs, "balanced_accuracy")
    # every threshold in (0.3, 0.6] separates the classes; the midpoint 0.45 is the candidate nearest 0.5
    assert point["threshold"] == pytest.approx(0.45)
    assert point["val"]["balanced_accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_balanced_accuracy_threshold_is_the_best_on_validation(seed: int):
    rng = np.random.default_rng(seed)
    y_true = (rng.random(200) < 0.2).astype(int)  # imbalanced
    scores = rng.random(200) * 0.6 + 0.25 * y_true
    probs = np.stack([1 - scores, scores], axis=1)
    point = choose_operating_point(y_true, probs, "balanced_accuracy")
    reached = skm.balanced_accuracy_score(y_true, apply_operating_point(probs, point))
    best = max(skm.balanced_accuracy_score(y_true, (scores >= t).astype(int)) for t in np.unique(scores))
    assert reached == pytest.approx(best)
    assert point["val"]["balanced_accuracy"] == pytest.approx(reached)
    assert reached >= skm.balanced_accuracy_score(y_true, probs.argmax(1)) - 1e-12


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95, 1.0])
def test_sensitivity_target_reached_with_the_highest_threshold(target: float):
    rng = np.random.default_rng(11)
    y_true = (rng.random(150) < 0.3).astype(int)
    scores = rng.random(150) * 0.7 + 0.2 * y_true
    probs = np.stack([1 - scores, scores], axis=1)
    point = choose_operating_point(y_true, probs, f"sensitivity:{target}")
    decisions = apply_operating_point(probs, point)
    assert skm.recall_score(y_true, decisions) >= target - 1e-12
    higher = np.unique(scores[scores > point["threshold"]])
    if higher.size:  # the next threshold up misses the target
        assert skm.recall_score(y_true, (scores >= higher[0]).astype(int)) < target


@pytest.mark.parametrize("seed", range(5))
def test_multiclass_offsets_never_worse_than_argmax_on_validation(seed: int):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(4, size=240, p=[0.6, 0.25, 0.1, 0.05])
    logits = np.log(np.array([0.6, 0.25, 0.1, 0.05]))[None] + rng.normal(0, 1, (240, 4))
    logits[np.arange(240), y_true] += 1.0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    point = choose_operating_point(y_true, probs, "balanced_accuracy")
    assert len(point["log_offsets"]) == 4
    chosen = skm.balanced_accuracy_score(y_true, apply_operating_point(probs, point))
    assert chosen >= skm.balanced_accuracy_score(y_true, probs.argmax(1)) - 1e-12
    assert point["val"]["balanced_accuracy"] == pytest.approx(chosen)


def test_multilabel_point_has_one_threshold_per_label():
    rng = np.random.default_rng(3)
    y_true = (rng.random((100, 3)) < 0.3).astype(int)
    y_true[:, 2] = 0  # a label without positives keeps 0.5
    probs = np.clip(0.4 * y_true + rng.random((100, 3)) * 0.6, 0, 1)
    point = choose_operating_point(y_true, probs, "youden")
    assert len(point["thresholds"]) == 3 and point["thresholds"][2] == 0.5 and point["labels_at_default"] == [2]
    decided = apply_operating_point(probs, point)
    assert decided.shape == (100, 3)
    assert np.array_equal(decided[:, 0], (probs[:, 0] >= point["thresholds"][0]).astype(int))


def test_argmax_point_and_bad_rules():
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    assert apply_operating_point(probs, choose_operating_point([1, 0], probs, "argmax")).tolist() == [1, 0]
    assert apply_operating_point(probs, None).tolist() == [1, 0]
    with pytest.raises(MedsightError, match="unknown operating point"):
        choose_operating_point([1, 0], probs, "best")
    with pytest.raises(MedsightError, match="sensitivity must be"):
        choose_operating_point([1, 0], probs[:, :2], "sensitivity:1.5")
    with pytest.raises(MedsightError, match="needs two classes"):
        choose_operating_point([1, 0], probs, "youden")


def test_selection_auc_keeps_its_scale_when_a_class_is_missing():
    from sklearn.metrics import roc_auc_score

    from medsight.metrics.classification import selection_auc

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), 60)
    labels = rng.integers(0, 3, 60)
    # all classes present: scikit-learn's macro one-vs-rest AUC
    assert selection_auc(labels, probs) == pytest.approx(roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    # class 2 missing from validation: the mean one-vs-rest AUC of classes 0 and 1, still an AUC
    partial = labels % 2
    expected = np.mean([roc_auc_score(partial == k, probs[:, k]) for k in (0, 1)])
    assert selection_auc(partial, probs) == pytest.approx(expected)
    # binary: the positive class's AUC; one class only: undefined
    assert selection_auc(labels % 2, probs[:, :2]) == pytest.approx(roc_auc_score(labels % 2, probs[:, 1]))
    assert selection_auc(np.zeros(60, int), probs) is None
