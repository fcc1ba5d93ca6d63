"""`evaluate` for classification end to end: train one epoch on tiny synthetic sets, then check every output."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from medsight import api
from medsight.errors import MedsightError
from medsight.jsonio import load_json
from medsight.metrics.operating_point import apply_operating_point
from medsight.synthetic.classification import make_classification_npz, make_images

METRIC_KEYS = {"accuracy", "balanced_accuracy", "precision", "recall", "f1", "auc", "kappa", "ece", "confusion_matrix"}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_and_evaluate(data: Path, run: Path) -> dict:
    api.train(data, run, model="lenet5", epochs=1)
    return api.evaluate(run, split="test")


def read_predictions(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def check_outputs(result: dict, run: Path) -> Path:
    out = run / "eval" / "test"
    assert Path(result["report"]) == out / "report.html"
    written = load_json(out / "metrics.json")
    assert written == json.loads(json.dumps({k: v for k, v in result.items() if k != "report"}))
    html = (out / "report.html").read_text(encoding="utf-8")
    for title in ("Operating point", "ROC and precision-recall curves", "Calibration", "Training curves",
                  "Most confident mistakes", "95% CI"):
        assert title in html
    assert html.count("data:image/png;base64,") >= 5
    assert {p.name for p in (out / "plots").glob("*.png")} >= {"roc.png", "pr.png", "calibration.png",
                                                               "training_curves.png", "probabilities.png"}
    return out


def test_binary_2d_metrics_agree_with_sklearn_on_the_predictions(tmp_path: Path):
    data = make_classification_npz(tmp_path / "lesions.npz", n_train=96, n_val=48, n_test=60, seed=3)
    run = tmp_path / "run"
    result = train_and_evaluate(data, run)
    out = check_outputs(result, run)
    assert result["task"] == "classification" and result["split"] == "test" and result["num_cases"] == 60
    assert METRIC_KEYS <= set(result["metrics"]) and "kappa_quadratic" not in result["metrics"]
    assert set(result["per_class"]) == {"lesion", "normal"} and set(result["metrics_argmax"]) >= METRIC_KEYS
    for name in ("accuracy", "balanced_accuracy", "f1", "auc", "kappa", "sensitivity", "specificity"):
        low, high = result["ci95"][name]
        assert low <= result["metrics"][name] <= high, name
    state = load_json(run / "state.json")
    assert result["operating_point"] == state["operating_point"] and "threshold" in result["operating_point"]

    rows = read_predictions(out / "predictions" / "predictions.csv")
    assert [r["case_id"] for r in rows] == [f"test_{i}" for i in range(60)]
    truth = np.array([int(r["true"]) for r in rows])
    called = np.array([int(r["predicted"]) for r in rows])
    probs = np.array([[float(r["prob_normal"]), float(r["prob_lesion"])] for r in rows])
    assert np.array_equal(truth, np.load(data)["test_labels"].ravel())
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    threshold = result["operating_point"]["threshold"]
    clear = np.abs(probs[:, 1] - threshold) > 1e-7  # the CSV keeps float32 precision (9 digits)
    assert np.array_equal(called[clear], apply_operating_point(probs, result["operating_point"])[clear])
    m = result["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(truth, called))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(truth, called))
    assert m["f1"] == pytest.approx(skm.f1_score(truth, called, average="macro", zero_division=np.nan))
    assert m["kappa"] == pytest.approx(skm.cohen_kappa_score(truth, called))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(truth, probs[:, 1]))
    assert m["confusion_matrix"] == skm.confusion_matrix(truth, called, labels=[0, 1]).tolist()
    assert m["sensitivity"] == pytest.approx(skm.recall_score(truth, called))
    cm = m["confusion_matrix"]
    assert f"The model found {cm[1][1]} of {sum(cm[1])} 'lesion' cases" in (out / "report.html").read_text(encoding="utf-8")
    plain = result["metrics_argmax"]
    assert plain["accuracy"] == pytest.approx(skm.accuracy_score(truth, probs.argmax(1)))
    assert plain["confusion_matrix"] == skm.confusion_matrix(truth, probs.argmax(1), labels=[0, 1]).tolist()

    other = np.load(data)
    three_classes = write_npz(tmp_path / "three.npz", {s: other[f"{s}_images"] for s in ("train", "val", "test")},
                              {s: other[f"{s}_labels"] * 2 for s in ("train", "val", "test")})
    with pytest.raises(MedsightError, match=r"three.npz: split 'test' has class index 2 but the model knows 2 classes"):
        api.evaluate(run, data=three_classes, split="test")


def write_npz(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> Path:
    np.savez_compressed(path, **{f"{s}_images": v for s, v in images.items()}, **{f"{s}_labels": v for s, v in labels.items()})
    return path


def test_multiclass_3d_ordinal(tmp_path: Path):
    rng = np.random.default_rng(0)
    images, labels = {}, {}
    for split, count in (("train", 48), ("val", 24), ("test", 30)):
        images[split], _ = make_images(count, 3, 16, rng, 0.5)
        labels[split] = rng.integers(0, 3, (count, 1))
    data = write_npz(tmp_path / "retinamnist.npz", images, labels)  # a MedMNIST ordinal set by name
    run = tmp_path / "run3d"
    result = train_and_evaluate(data, run)
    check_outputs(result, run)
    assert result["num_cases"] == 30 and len(result["metrics"]["confusion_matrix"]) == 3
    assert "kappa_quadratic" in result["metrics"] and "kappa_quadratic" in result["ci95"]
    assert "sensitivity" not in result["metrics"]
    rows = read_predictions(run / "eval" / "test" / "predictions" / "predictions.csv")
    truth = np.array([int(r["true"]) for r in rows])
    called = np.array([int(r["predicted"]) for r in rows])
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(3)] for r in rows])
    m = result["metrics"]
    assert m["kappa_quadratic"] == pytest.approx(skm.cohen_kappa_score(truth, called, weights="quadratic"))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(truth, probs, multi_class="ovr"))
    assert (run / "eval" / "test" / "plots" / "confident_mistakes.png").is_file()
    assert "macro mean of one-vs-rest" in result["definitions"]["auc"] and "kappa_quadratic" in result["definitions"]
    assert "Definitions" in Path(result["report"]).read_text(encoding="utf-8")


def test_multilabel_2d(tmp_path: Path):
    rng = np.random.default_rng(1)
    images, labels = {}, {}
    for split, count in (("train", 64), ("val", 32), ("test", 40)):
        images[split], _ = make_images(count, 2, 28, rng, 0.5)
        labels[split] = (rng.random((count, 3)) < [0.5, 0.3, 0.6]).astype(np.uint8)
    data = write_npz(tmp_path / "chest.npz", images, labels)
    run = tmp_path / "runml"
    result = train_and_evaluate(data, run)
    check_outputs(result, run)
    assert result["multilabel"] and set(result["metrics"]) >= {"auc", "accuracy", "f1"}
    assert set(result["per_class"]) == {"0", "1", "2"}
    # one threshold per label, chosen on the validation split (the default rule is balanced accuracy)
    thresholds = result["operating_point"]["thresholds"]
    assert len(thresholds) == 3 and all(0.0 < t < 1.0 for t in thresholds)
    rows = read_predictions(run / "eval" / "test" / "predictions" / "predictions.csv")
    truth = np.array([[int(r[f"true_{k}"]) for k in range(3)] for r in rows])
    probs = np.array([[float(r[f"prob_{k}"]) for k in range(3)] for r in rows])
    assert np.array_equal(truth, labels["test"])
    for k in range(3):
        assert result["per_class"][str(k)]["auc"] == pytest.approx(skm.roc_auc_score(truth[:, k], probs[:, k]))
        assert result["per_class"][str(k)]["accuracy"] == pytest.approx(
            skm.accuracy_score(truth[:, k], probs[:, k] >= thresholds[k]))


@pytest.mark.parametrize("hits,total", [(56, 94), (0, 10), (10, 10), (1, 3)])
def test_wilson_interval_matches_scipy(hits: int, total: int):
    from scipy.stats import binomtest

    from medsight.tasks.classification.evaluate import wilson_interval

    expected = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(hits, total) == pytest.approx([expected.low, expected.high], abs=1e-12)
    assert wilson_interval(0, 0) is None


def test_pick_mistakes_takes_each_true_class_in_turn():
    from medsight.tasks.classification.report import pick_mistakes

    wrong = np.array([1, 1, 1, 1, 0, 1], bool)
    confidence = np.array([0.9, 0.8, 0.7, 0.6, 0.99, 0.55])
    groups = np.array([0, 0, 0, 0, 1, 1])
    # class 1's only mistake (case 5) is shown although four class-0 mistakes are more confident
    assert pick_mistakes(wrong, confidence, groups, 3) == [0, 1, 5]
    assert pick_mistakes(wrong, confidence, groups, 10) == [0, 1, 2, 3, 5]
    assert pick_mistakes(np.zeros(6, bool), confidence, groups, 3) == []
