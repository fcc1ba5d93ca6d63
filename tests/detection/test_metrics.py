"""Detection metrics against hand-computed cases and pycocotools on the same random predictions."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from medsight.metrics.detection import DetectionMetric, average_precision, box_iou, froc


def test_iou_2d_and_3d_by_hand():
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(1 / 7)
    assert box_iou(np.array([[0, 0, 0, 2, 2, 2]]), np.array([[1, 0, 0, 3, 2, 2]]))[0, 0] == pytest.approx(4 / 12)


def test_all_point_ap_by_hand():
    # 3 true boxes; ranked detections TP, FP, TP, FP: recall steps 1/3 at precision 1, 1/3 at precision 2/3
    ap, recall, precision = average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6]), 3)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])


def test_map_and_froc_by_hand():
    metric = DetectionMetric(num_classes=1)
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    # image 1: a perfect hit (0.9), a duplicate of it (0.8), a false positive (0.7)
    metric.update(np.array([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]]), np.array([0.9, 0.8, 0.7]), np.zeros(3), gt, np.zeros(2))
    # image 2: no true box, one false positive (0.95)
    metric.update(np.array([[0, 0, 5, 5]]), np.array([0.95]), np.zeros(1), np.zeros((0, 4)), np.zeros(0))
    out = metric.compute()["metrics"]
    # ranked: FP(.95) TP(.9) FP(.8) FP(.7); 2 true boxes -> AP = 1/2 * 1/2
    assert out["map_50"] == pytest.approx(0.25)
    assert out["mar_100"] == pytest.approx(0.5)
    # FROC (IoU >= 0.1; the duplicate is ignored): 1 FP/2 images at sens 0 then TP -> sens .5 at 0.5 FP/image
    assert out["froc"]["0.25"] == 0.0 and out["froc"]["0.5"] == 0.5 and out["froc"]["8"] == 0.5
    assert out["cpm"] == pytest.approx((0 + 0 + 0.5 * 5) / 7)


def test_froc_rates():
    sens, _, _ = froc(np.array([1, 0, 1, 0, 0]), np.array([5, 4, 3, 2, 1.0]), num_gt=4, num_images=4)
    # FP rate after each: 0, .25, .25, .5, .75 -> at 1/8 only the first hit counts, at 1/4 both
    assert sens == [0.25, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(25):
        n = int(rng.integers(0, 6))
        gt = np.concatenate([rng.uniform(0, 80, (n, 2)), np.zeros((n, 2))], 1)
        gt[:, 2:] = gt[:, :2] + rng.uniform(4, 30, (n, 2))
        gl = rng.integers(0, 3, n)
        k = int(rng.integers(0, 8))
        noise = np.concatenate([rng.uniform(0, 90, (k, 2))] * 2, 1) + np.array([0, 0, 12, 12])
        pb = np.concatenate([gt + rng.normal(0, 3, gt.shape), noise])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = np.concatenate([gl, rng.integers(0, 3, k)])
        images.append((pb, rng.uniform(0, 1, len(pb)), pl, gt, gl))
    return images


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocotools(seed):
    pycocotools = pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    assert pycocotools
    images = random_case(seed)
    ours = DetectionMetric(num_classes=3, interpolation="coco101")
    all_point = DetectionMetric(num_classes=3)
    coco_images, anns, dets = [], [], []
    for i, (pb, ps, pl, gt, gl) in enumerate(images):
        ours.update(pb, ps, pl, gt, gl)
        all_point.update(pb, ps, pl, gt, gl)
        coco_images.append({"id": i, "width": 128, "height": 128})
        for b, c in zip(gt, gl):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": [b[0], b[1], w, h],
                         "area": float(w * h), "iscrowd": 0})
        for b, s, c in zip(pb, ps, pl):
            dets.append({"image_id": i, "category_id": int(c) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    gt_api = COCO()
    gt_api.dataset = {"images": coco_images, "annotations": anns, "categories": [{"id": c} for c in (1, 2, 3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    got = ours.compute()["metrics"]
    assert got["map_50_95"] == pytest.approx(evaluator.stats[0], abs=1e-9)
    assert got["map_50"] == pytest.approx(evaluator.stats[1], abs=1e-9)
    assert got["mar_100"] == pytest.approx(evaluator.stats[8], abs=1e-9)
    # all-point interpolation is the exact area, close to (not equal to) the 101-point sample
    assert all_point.compute()["metrics"]["map_50"] == pytest.approx(evaluator.stats[1], abs=0.02)
