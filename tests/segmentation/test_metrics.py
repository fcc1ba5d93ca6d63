"""Segmentation metrics against hand-computed values, scikit-learn and MONAI's metric classes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.errors import MedsightError
from medsight.evaluation.folders import evaluate_folders
from medsight.metrics.segmentation import SegmentationMetrics, case_metrics, lesion_counts, one_hot


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
    assert {k: m[2][k] for k in ("dice", "iou", "hd95", "nsd")} == {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}  # absent from both
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
    ours = case_metrics(pred, ref, [1, 2], spacing=spacing, tolerance=[1.0, 2.0])
    for c in (1, 2):
        assert ours[c]["dice"] == pytest.approx(f1_score(ref.ravel() == c, pred.ravel() == c))
        assert ours[c]["iou"] == pytest.approx(jaccard_score(ref.ravel() == c, pred.ravel() == c))
    y_pred, y = one_hot(pred, [0, 1, 2]).float(), one_hot(ref, [0, 1, 2]).float()
    dice = DiceMetric(include_background=False)(y_pred, y)[0]
    iou = MeanIoU(include_background=False)(y_pred, y)[0]
    hd = HausdorffDistanceMetric(include_background=False, percentile=95)(y_pred, y, spacing=spacing)[0]
    nsd = SurfaceDiceMetric([1.0, 2.0], include_background=False, use_subvoxels=True)(y_pred, y, spacing=spacing)[0]
    voxel_faces = SurfaceDiceMetric([1.0, 2.0], include_background=False)(y_pred, y, spacing=spacing)[0]
    assert not np.allclose(nsd.numpy(), voxel_faces.numpy())  # the surface-element NSD is a different number
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
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "organ": 1}}), encoding="utf-8")
    result = evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out")
    expected = 2 * 5 * 36 / (2 * 216)
    assert result["per_class"]["organ"]["dice"] == pytest.approx((1 + expected) / 2)
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text(encoding="utf-8"))
    assert saved["metrics"]["dice"] == pytest.approx(result["metrics"]["dice"])
    assert "use_subvoxels=True" in saved["definitions"]["nsd"] and "1 mm" in saved["definitions"]["nsd"]
    # the prediction is one voxel (1 mm) off along x: inside the default 1 mm tolerance everywhere
    assert saved["nsd_tolerance_mm"] == {"organ": 1.0} and result["per_class"]["organ"]["nsd"] == pytest.approx(1.0)
    report = Path(result["report"]).read_text(encoding="utf-8")
    assert "Definitions" in report and "use_subvoxels=True" in report
    narrow = evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "narrow", nsd_tolerance=[0.4])
    assert narrow["per_class"]["organ"]["nsd"] < 0.99 and "0.4 mm" in narrow["definitions"]["nsd"]
    with pytest.raises(MedsightError, match="2 NSD tolerances for 1 foreground"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "bad", nsd_tolerance=[1.0, 2.0])
    (tmp_path / "pred" / "c1.nii.gz").unlink()
    with pytest.raises(MedsightError, match="no prediction"):
        evaluate_folders(tmp_path / "pred", tmp_path / "ref", tmp_path / "out")


def test_lesion_wise_detection_by_hand():
    ref = np.zeros((10, 10), np.uint8)
    ref[0:2, 0:2] = 1  # lesion A
    ref[5, 5] = 1  # lesion B
    ref[8, 8] = 1  # lesion C
    pred = np.zeros_like(ref)
    pred[1:3, 1:3] = 1  # overlaps A: A found
    pred[5, 7] = 1  # near B, no overlap: false positive
    pred[9, 9] = 1  # touches C only at a corner, no overlap: false positive
    pred[6, 3] = pred[7, 4] = 1  # two diagonal voxels: one component (full connectivity), false positive
    assert lesion_counts(pred == 1, ref == 1) == {"lesion_tp": 1, "lesion_fn": 2, "lesion_fp": 3}
    metrics = SegmentationMetrics({0: "background", 1: "lesion", 2: "other"})
    metrics.update("hard", pred, ref)
    easy = np.zeros((10, 10), np.uint8)
    easy[3:5, 3:5] = 1
    metrics.update("easy", easy, easy)
    out = metrics.compute()
    lesion = out["per_class"]["lesion"]
    # pooled: TP 2, FP 3, FN 2
    assert (lesion["lesion_tp"], lesion["lesion_fp"], lesion["lesion_fn"]) == (2, 3, 2)
    assert lesion["lesion_recall"] == pytest.approx(0.5) and lesion["lesion_precision"] == pytest.approx(0.4)
    assert lesion["lesion_f1"] == pytest.approx(4 / 9)
    assert np.isnan(out["per_class"]["other"]["lesion_f1"])  # never present: undefined, left out of the mean
    assert out["metrics"]["lesion_f1"] == pytest.approx(4 / 9)


def test_cli_nsd_tolerance_bad_value_is_one_line(tmp_path: Path, capsys):
    from medsight.cli import main

    assert main(["evaluate", "--pred", str(tmp_path), "--ref", str(tmp_path), "--nsd-tolerance", "1,x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--nsd-tolerance" in err[0]
