"""Ordered grades: recognised from class names, scored with quadratic kappa (scikit-learn as reference),
and an operating point and epoch choice by QWK."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import cohen_kappa_score

from medsight.metrics.operating_point import apply_operating_point, choose_operating_point
from medsight.io.class_order import ordinal_class_order
from medsight.metrics.ordinal import choose_grade_cuts, grades_from_cuts, quadratic_kappa


def test_quadratic_kappa_matches_scikit_learn():
    rng = np.random.default_rng(1)
    for _ in range(5):
        truth, decided = rng.integers(0, 5, 200), rng.integers(0, 5, 200)
        decided[:120] = truth[:120]
        assert quadratic_kappa(truth, decided, 5) == pytest.approx(cohen_kappa_score(truth, decided, weights="quadratic"))


def test_grade_names_are_recognised_and_ordered_by_number():
    assert ordinal_class_order(["grade_10", "grade_2", "grade_0"]) == ["grade_0", "grade_2", "grade_10"]
    assert ordinal_class_order(["0", "1", "2", "3", "4"]) == ["0", "1", "2", "3", "4"]
    assert ordinal_class_order(["Stage 1", "Stage 2", "Stage 3"]) == ["Stage 1", "Stage 2", "Stage 3"]
    assert ordinal_class_order(["benign", "malignant", "normal"]) is None
    assert ordinal_class_order(["grade_0", "grade_1"]) is None  # two classes: plain kappa already says it
    assert ordinal_class_order(["grade_1", "level_1", "grade_2"]) is None  # two names for one grade


def test_cuts_on_the_expected_grade_by_hand():
    probs = np.array([[0.6, 0.4, 0.0], [0.1, 0.5, 0.4], [0.0, 0.2, 0.8]])  # E[g] = 0.4, 1.3, 1.8
    assert grades_from_cuts(probs, [0.5, 1.5]).tolist() == [0, 1, 2]
    assert grades_from_cuts(probs, [0.3, 1.2]).tolist() == [1, 2, 2]
    assert apply_operating_point(probs, {"rule": "qwk", "grade_cuts": [0.3, 1.2]}).tolist() == [1, 2, 2]


def test_qwk_cuts_beat_argmax_on_validation_when_argmax_is_biased():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 5, 400)
    logits = -0.8 * (np.arange(5)[None, :] - truth[:, None] - 0.6) ** 2 + rng.normal(0, 0.7, (400, 5))
    logits[:, 0] += 1.5  # a model that over-calls grade 0
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    point = choose_operating_point(truth, probs, "qwk")
    assert "grade_cuts" in point and np.all(np.diff(point["grade_cuts"]) > 0)
    decided = apply_operating_point(probs, point)
    reached = cohen_kappa_score(truth, decided, weights="quadratic")
    assert reached == pytest.approx(point["val"]["kappa_quadratic"])
    assert reached > cohen_kappa_score(truth, probs.argmax(1), weights="quadratic") + 0.02


def test_argmax_is_kept_when_it_is_best():
    truth = np.array([0, 1, 2, 0, 1, 2])
    probs = np.eye(3)[truth] * 0.9 + 0.1 / 3
    assert choose_grade_cuts(truth, probs) == {"rule": "qwk", "val": {"kappa_quadratic": 1.0, "decided_by": "argmax"}}


@pytest.fixture
def graded_folder(tmp_path):
    rng = np.random.default_rng(0)
    for grade in range(3):
        (tmp_path / "data" / f"grade_{grade}").mkdir(parents=True)
        for k in range(10):
            pixels = np.clip(rng.normal(60 + 70 * grade, 20, (16, 16)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / f"grade_{grade}" / f"{k}.png")
    return tmp_path / "data"


def test_graded_folder_trains_chooses_by_qwk_and_reports_it(graded_folder, tmp_path, capsys):
    from medsight.cli import main

    run = tmp_path / "run"
    assert main(["plan", str(graded_folder), "--out", str(run)]) == 0
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    assert plan["ordinal"] is True
    plan["selection_metric"] = "qwk"
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    assert main(["train", str(graded_folder), "--out", str(run), "--epochs", "2", "--model", "lenet5",
                 "--operating-point", "qwk"]) == 0
    with open(run / "log.csv") as handle:
        log = list(csv.DictReader(handle))
    assert "kappa_quadratic" in log[0]
    assert json.loads((run / "state.json").read_text(encoding="utf-8"))["operating_point"]["rule"] == "qwk"
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    with open(run / "eval" / "test" / "predictions" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    truth, decided = [int(r["true"]) for r in rows], [int(r["predicted"]) for r in rows]
    assert metrics["metrics"]["kappa_quadratic"] == pytest.approx(cohen_kappa_score(truth, decided, weights="quadratic"))


def test_qwk_selection_without_grades_is_one_line(tiny_npz, tmp_path, capsys):
    from medsight.cli import main

    run = tmp_path / "run"
    assert main(["plan", str(tiny_npz), "--out", str(run)]) == 0
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan["selection_metric"] = "qwk"
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == 'medsight: plan.json: selection_metric \'qwk\' needs ordered grades: set "ordinal": true'
