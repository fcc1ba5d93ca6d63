"""Segmentation metrics against hand-computed values, scikit-learn and MONAI's metric classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.errors import MedsightError
from medsight.evaluation.folders import evaluate_folders
from medsight.metrics.segmentation import SegmentationMetrics, case_metrics, one_hot


def test_hand_computed_dice_and_iou():
    ref = np.zeros((4, 4), np.uint8)
    ref[0:2, 0:3] = 1  # 6 voxels
    pred = np.zeros((4, 4), np.uint8)
    pred[0:2, 0:2] = 1  # 4 voxels, all inside ref
    m = case_metrics(pred, ref, [1])[1]
    assert m["dice"] == pytest.approx(2 * 4 / (4 + 6))
    assert m["iou"] == pytest.approx(4 / 6)


def test_empty_in_both_and_in_one():
    ref = np.zeros((8, 8), np.uint8)
    pred = np.zeros((8, 8), np.uint8)
    ref[2:4, 2:4] = 1
    pred[2:4, 2:4] = 1
    m = case_metrics(pred, ref, [1, 2, 3], spacing=(2.0, 1.0))
    assert m[2] == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}  # class 2 absent from both
    assert m[1]["dice"] == 1.0 and m[1]["hd95"] == 0.0 and m[1]["nsd"] == 1.0
    pred[6, 6] = 3  # class 3 only predicted
    m = case_metrics(pred, ref, [3], spacing=(2.0, 1.0))[3]
    assert m["dice"] == 0.0 and m["nsd"] == 0.0 and m["hd95"] == pytest.approx(np.hypot(16, 8))


def test_hd95_in_mm_with_spacing():
    ref = np.zeros((10, 10, 10), np.uint8)
    pred = np.zeros_like(ref)
    ref[2, 5, 5] = 1
    pred[5, 5, 5] = 1  # three voxels apart along z, spacing 2 mm there
    assert case_metrics(pred, ref, [1], spacing=(2.0, 1.0, 1.0))[1]["hd95"] == pytest.approx(6.0)


def test_matches_sklearn_and_monai_on_random_masks():
    from monai.metrics import DiceMetric, HausdorffDistanceMetric, MeanIoU, SurfaceDiceMetric
    from sklearn.metrics import f1_score, jaccard_score

    rng = np.random.default_rng(0)
    ref = (rng.random((12, 12, 12)) < 0.3).astype(np.uint8) * rng.integers(1, 3, (12, 12, 12)).astype(np.uint8)
    pred = ref.copy()
    flip = rng.random(ref.shape) < 0.2
    pred[flip] = rng.integers(0, 3, int(flip.sum()))
    spacing = (1.5, 1.0, 0.5)
    ours = case_metrics(pred, ref, [1, 2], spacing=spacing)
    for c in (1, 2):
        assert ours[c]["dice"] == pytest.approx(f1_score(ref.ravel() == c, pred.ravel() == c))
        assert ours[c]["iou"] == pytest.approx(jaccard_score(ref.ravel() == c, pred.ravel() == c))
    y_pred, y = one_hot(pred, [0, 1, 2]).float(), one_hot(ref, [0, 1, 2]).float()
    dice = DiceMetric(include_background=False)(y_pred, y)[0]
    iou = MeanIoU(include_background=False)(y_pred, y)[0]
    hd = HausdorffDistanceMetric(include_background=False, percentile=95)(y_pred, y, spacing=spacing)[0]
    nsd = SurfaceDiceMetric([1.0, 1.0], include_background=False)(y_pred, y, spacing=spacing)[0]
    for k, c in enumerate((1, 2)):
        assert ours[c]["dice"] == pytest.approx(float(dice[k]), abs=1e-6)
        assert ours[c]["iou"] == pytest.approx(float(iou[k]), abs=1e-6)
        assert ours[c]["hd95"] == pytest.approx(float(hd[k]), abs=1e-5)
        assert ours[c]["nsd"] == pytest.approx(float(nsd[k]), abs=1e-6)


def test_accumulator_means_over_classes_and_cases():
    metrics = SegmentationMetrics({0: "background", 1: "a", 2: "b"})
    ref = np.zeros((4, 4), np.uint8)
    ref[:2, :2] = 1
    metrics.update("perfect", ref, ref)  # a: 1, b: empty in both -> 1
    metrics.update("missed", np.zeros_like(ref), ref)  # a: 0, b: 1
    out = metrics.compute()
    assert out["num_cases"] == 2 and [r["case"] for r in out["per_case"]] == ["perfect", "missed"]
    assert out["per_class"]["a"]["dice"] == pytest.approx(0.5) and out["per_class"]["b"]["dice"] == 1.0
    assert out["metrics"]["dice"] == pytest.approx(0.75)


def test_evaluate_folders(tmp_path: Path, volume_writer):
    ref = np.zeros((16, 16, 16), np.uint8)
    ref[4:10, 4:10, 4:10] = 1
    pred = np.zeros_like(ref)
    pred[4:10, 4:10, 5:11] = 1
    for k in range(2):
        volume_writer(tmp_path / "ref" / f"c{k}.nii.gz", ref)
        volume_writer(tmp_path / "pred" / f"c{k}.nii.gz", pred if k else ref)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1}}))
    result = evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out")
    expected = 2 * 5 * 36 / (2 * 216)
    assert result["per_class"]["organ"]["dice"] == pytest.approx((1 + expected) / 2)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["metrics"]["dice"] == pytest.approx(result["metrics"]["dice"])
    assert Path(result["report"]).is_file()
    (tmp_path / "pred" / "c1.nii.gz").unlink()
    with pytest.raises(MedsightError, match="no prediction"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out")
