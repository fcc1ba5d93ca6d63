"""Each task learns: a trivially separable synthetic set made by medsight reaches a high score in a small,
fixed, seeded budget (a model that does not learn scores near chance: AUC 0.5, Dice and mAP near 0)."""

from __future__ import annotations

import json
from pathlib import Path

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


def small_schedule(run: Path, iterations: int, **settings) -> None:
    """A fixed, small number of steps (the planner's defaults suit real training), validated on 4 cases."""
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan.update({"iterations_per_epoch": iterations, "validation_cases": 4, **settings})
    plan["inference"]["mirror_axes"] = []
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


# 3D: larger, brighter shapes than the default set (at 16^3 and default contrast 120 steps reach Dice 0.78:
# the boundary voxels of 2-4 voxel radii dominate), two volumes of 24^3 a step
@pytest.mark.parametrize("dims, size, cases, epochs, iterations, shapes, settings",
                         [(2, 32, 16, 14, 15, {}, {}),
                          (3, 24, 12, 10, 12, {"object_scale": 1.5, "contrast": 1.5}, {"batch_size": 2})], ids=["2d", "3d"])
def test_segmentation_learns_bright_shapes(tmp_path, dims, size, cases, epochs, iterations, shapes, settings):
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=dims, num_cases=cases, seed=0, size=size,
                                     **shapes)
    run = tmp_path / "run"
    api.plan(data, run)
    small_schedule(run, iterations=iterations, **settings)
    api.train(data, run, epochs=epochs, model="dynunet_tiny", learning_rate=0.01, seed=0)
    result = api.evaluate(run, split="test")
    assert result["num_cases"] >= 3 and result["metrics"]["dice"] >= 0.9


def test_detection_2d_learns_bright_discs(tmp_path):
    from medsight.synthetic.detection import make_blobs_2d

    data = make_blobs_2d(tmp_path / "discs", seed=0, num_images=40, size=64, radius=(6, 12), contrast=(0.5, 0.6),
                         classes=("disc",), per_image=(1, 3))
    run = tmp_path / "run"
    api.train(data, run, epochs=10, model="retinanet", seed=0)  # the planned 8 steps of 4 images an epoch
    result = api.evaluate(run, split="test")
    assert result["num_cases"] >= 8 and result["metrics"]["map_50"] >= 0.9


def test_detection_3d_learns_bright_spheres(tmp_path):
    from medsight.synthetic.detection import make_spheres_3d

    data = make_spheres_3d(tmp_path / "spheres", seed=0, num_cases=24, size=32, radius=(6, 9), per_case=(1, 2),
                           contrast=(0.6, 0.8))
    run = tmp_path / "run"
    # 16 epochs of the planned 9 steps of two 32^3 patches; at the default 1e-3 boxes are still loose (IoU < 0.5)
    api.train(data, run, epochs=16, model="retinanet", learning_rate=0.003, seed=0)
    result = api.evaluate(run, split="test")
    assert result["num_cases"] >= 5 and result["metrics"]["map_50"] >= 0.9
