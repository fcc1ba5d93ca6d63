"""Each task learns: a trivially separable synthetic set made by medsight reaches a high score in a small,
fixed, seeded budget (a model that does not learn scores near chance: AUC 0.5, Dice and mAP near 0)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight import api


@pytest.fixture(autouse=True)
def single_thread(one_thread):
    yield


def scored_auc(run: Path, data: Path) -> float:
    """Test-split ROC-AUC of a trained classification run, from its own predictions (scikit-learn's AUC)."""
    from sklearn.metrics import roc_auc_score

    _, task, model = api.load_run(run)
    _, dataset = api.read_dataset(data)
    test = dataset.splits["test"]
    logits = task.predict_tensor(model, task.prepared(dataset, test))
    return float(roc_auc_score(dataset.labels[test], torch.softmax(logits, 1)[:, 1].numpy()))


@pytest.mark.parametrize("dims", [2, 3], ids=["2d", "3d"])
def test_classification_learns_a_bright_lesion(tmp_path, dims):
    from medsight.synthetic.classification import make_classification_npz

    size = 16
    data = make_classification_npz(tmp_path / "lesions.npz", spatial_dims=dims, size=size, n_train=96, n_val=32,
                                   n_test=48, lesion_fraction=0.5, seed=0, contrast=(0.5, 0.7),
                                   radius=(size / 6, size / 4))
    run = tmp_path / "run"
    api.train(data, run, epochs=6, model="lenet5", seed=0)
    assert scored_auc(run, data) >= 0.9


def small_schedule(run: Path, iterations: int) -> None:
    """A fixed, small number of steps (the planner's defaults suit real training), validated on 4 cases."""
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan.update({"iterations_per_epoch": iterations, "validation_cases": 4})
    plan["inference"]["mirror_axes"] = []
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


@pytest.mark.parametrize("dims, size, cases, epochs", [(2, 32, 16, 14)], ids=["2d"])
def test_segmentation_learns_bright_shapes(tmp_path, dims, size, cases, epochs):
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=dims, num_cases=cases, seed=0, size=size)
    run = tmp_path / "run"
    api.plan(data, run)
    small_schedule(run, iterations=15)
    api.train(data, run, epochs=epochs, model="dynunet_tiny", learning_rate=0.01, seed=0)
    result = api.evaluate(run, split="test")
    assert result["num_cases"] >= 3 and result["metrics"]["dice"] >= 0.9
