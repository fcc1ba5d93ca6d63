"""Detection metrics against hand-computed cases and against pycocotools' COCOeval on the same predictions."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from medsight.metrics.detection import DetectionMetric, average_precision, box_iou


def test_iou_2d_and_3d_by_hand():
    assert box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(1 / 7)
    assert box_iou(np.array([[0, 0, 0, 2, 2, 2]]), np.array([[1, 0, 0, 3, 2, 2]]))[0, 0] == pytest.approx(4 / 12)


def test_all_point_and_101_point_ap_by_hand():
    # 3 true boxes; ranked detections TP, FP, TP, FP: recall 1/3 at precision 1, 2/3 at precision 2/3
    tp, scores = np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.6])
    ap, recall, _ = average_precision(tp, scores, 3)
    assert ap == pytest.approx(1 / 3 * 1 + 1 / 3 * 2 / 3)
    np.testing.assert_allclose(recall, [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    # 101 points: recall 0..0.33 (34 points) at 1, 0.34..0.66 (33 points) at 2/3, the rest unreached
    assert average_precision(tp, scores, 3, "coco101")[0] == pytest.approx((34 + 33 * 2 / 3) / 101)


def test_map_by_hand():
    metric = DetectionMetric(num_classes=1)
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]])
    # image 1: a perfect hit (0.9), a duplicate of it (0.8), a false positive (0.7)
    metric.update(np.array([[0, 0, 10, 10], [0, 0, 10, 9], [50, 50, 60, 60]]), np.array([0.9, 0.8, 0.7]), np.zeros(3), gt, np.zeros(2))
    # image 2: no true box, one false positive (0.95)
    metric.update(np.array([[0, 0, 5, 5]]), np.array([0.95]), np.zeros(1), np.zeros((0, 4)), np.zeros(0))
    out = metric.compute()["metrics"]
    # ranked FP(.95) TP(.9) FP(.8) FP(.7), 2 true boxes: envelope 0.5 up to recall 0.5 at every IoU threshold
    assert out["map50_voc_allpoint"] == pytest.approx(0.25)
    assert out["map_50"] == pytest.approx(51 * 0.5 / 101)  # recall points 0, 0.01, ..., 0.5
    assert out["map_50_95"] == pytest.approx(51 * 0.5 / 101) and out["map_75"] == pytest.approx(51 * 0.5 / 101)
    assert out["mar_100"] == pytest.approx(0.5)


def test_froc_in_detection_metric_uses_centres_in_mm():
    # one 10 x 10 true box centred at (5, 5); a prediction centred at (9, 5): 4 voxels off
    truth, pred = np.array([[0, 0, 10, 10]]), np.array([[4, 0, 14, 10]])
    near = DetectionMetric(num_classes=1)
    near.update(pred, np.array([0.9]), np.zeros(1), truth, np.zeros(1))  # 4 < radius 5: a hit
    far = DetectionMetric(num_classes=1)
    far.update(pred, np.array([0.9]), np.zeros(1), truth, np.zeros(1), spacing=(2.0, 1.0))  # 8 mm vs radius 7.5
    assert near.compute()["metrics"]["cpm"] == 1.0
    assert far.compute()["metrics"]["cpm"] == 0.0
    assert far.compute()["metrics"]["cpm_iou"] == 1.0  # IoU 6/14 >= 0.1


def random_case(seed: int, num_classes: int = 3):
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(25):
        n = int(rng.integers(0, 6))
        gt = np.concatenate([rng.uniform(0, 80, (n, 2)), np.zeros((n, 2))], 1)
        gt[:, 2:] = gt[:, :2] + rng.uniform(4, 30, (n, 2))
        gl = rng.integers(0, num_classes, n)
        k = int(rng.integers(0, 8))
        noise = np.concatenate([rng.uniform(0, 90, (k, 2))] * 2, 1) + np.array([0, 0, 12, 12])
        pb = np.concatenate([gt + rng.normal(0, 3, gt.shape), noise])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        pl = np.concatenate([gl, rng.integers(0, num_classes, k)])
        images.append((pb, rng.uniform(0, 1, len(pb)), pl, gt, gl))
    return images


def coco_stats(images, num_classes: int) -> np.ndarray:
    """COCOeval's 12 summary numbers for (pred boxes, scores, labels, true boxes, labels) per image."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco_images, anns, dets = [], [], []
    for i, (pb, ps, pl, gt, gl) in enumerate(images):
        coco_images.append({"id": i, "width": 128, "height": 128})
        for b, c in zip(gt, gl):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": int(c) + 1, "bbox": [b[0], b[1], w, h],
                         "area": float(w * h), "iscrowd": 0})
        for b, s, c in zip(pb, ps, pl):
            dets.append({"image_id": i, "category_id": int(c) + 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)})
    gt_api = COCO()
    gt_api.dataset = {"images": coco_images, "annotations": anns, "categories": [{"id": c + 1} for c in range(num_classes)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt_api.createIndex()
        evaluator = COCOeval(gt_api, gt_api.loadRes(dets) if dets else COCO(), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def ours(images, num_classes: int, flat_3d: bool = False) -> dict[str, float]:
    metric = DetectionMetric(num_classes=num_classes)
    for pb, ps, pl, gt, gl in images:
        if flat_3d:  # the same boxes one voxel deep: 3D IoU equals 2D IoU
            pb = np.concatenate([np.zeros((len(pb), 1)), pb[:, :2], np.ones((len(pb), 1)), pb[:, 2:]], 1)
            gt = np.concatenate([np.zeros((len(gt), 1)), gt[:, :2], np.ones((len(gt), 1)), gt[:, 2:]], 1)
        metric.update(pb, ps, pl, gt, gl)
    return metric.compute()["metrics"]


def assert_coco_equal(got: dict[str, float], stats: np.ndarray) -> None:
    for name, index in (("map_50_95", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert got[name] == pytest.approx(stats[index], abs=1e-6), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocotools_on_random_predictions(seed):
    images = random_case(seed)
    stats = coco_stats(images, 3)
    got = ours(images, 3)
    assert_coco_equal(got, stats)
    # the VOC all-point figure is the exact area: close to, not equal to, the 101-point sample
    assert got["map50_voc_allpoint"] == pytest.approx(stats[1], abs=0.02)


def test_matches_pycocotools_on_edge_cases():
    images = random_case(3, num_classes=2)
    # class 2 has references but never a prediction; class 3 predictions but no reference
    images[0] = (images[0][0], images[0][1], images[0][2], np.array([[5, 5, 25, 25.0]]), np.array([2]))
    images[1] = (np.array([[0, 0, 9, 9.0]]), np.array([0.99]), np.array([3]), np.zeros((0, 4)), np.zeros(0, int))
    images[2] = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int), np.zeros((0, 4)), np.zeros(0, int))  # empty image
    # a detection with equal IoU (9/11) to two true boxes: COCOeval gives it the later one, so the second
    # detection (IoU 1 with the later box, 2/3 with the earlier) is a hit only up to IoU 0.65
    images[3] = (np.array([[1, 0, 11, 10.0], [2, 0, 12, 10]]), np.array([0.9, 0.8]), np.array([0, 0]),
                 np.array([[0, 0, 10, 10.0], [2, 0, 12, 10]]), np.array([0, 0]))
    stats = coco_stats(images, 4)
    assert_coco_equal(ours(images, 4), stats)


def test_3d_boxes_one_voxel_deep_equal_2d():
    images = random_case(4)
    flat, plain = ours(images, 3, flat_3d=True), ours(images, 3)
    for name in ("map_50_95", "map_50", "map_75", "mar_100", "map50_voc_allpoint"):
        assert flat[name] == pytest.approx(plain[name], abs=1e-12)
    assert_coco_equal(flat, coco_stats(images, 3))


def test_3d_task_scores_froc_with_each_scans_spacing():
    from medsight.tasks.detection.task import DetectionTask

    class Geometry:
        spacing = (0.5, 1.0, 2.0)  # x, y, z as SimpleITK gives them

    class Scans:
        def load_geometry(self, index):
            return Geometry()

    task = DetectionTask({"spatial_dims": 3, "num_classes": 1}, {"task": "detection"})
    assert task.case_spacing(Scans(), 0) == (2.0, 1.0, 0.5)  # array order z, y, x
    assert DetectionTask({"spatial_dims": 2, "num_classes": 1}, {}).case_spacing(Scans(), 0) is None
    # a prediction 1.5 voxels off along z from a 4-voxel nodule: inside its radius (2) in voxels...
    truth, pred = np.array([[0, 0, 0, 4, 4, 4.0]]), np.array([[1.5, 0, 0, 5.5, 4, 4.0]])
    in_voxels = DetectionMetric(num_classes=1)
    in_voxels.update(pred, np.array([0.9]), np.zeros(1), truth, np.zeros(1))
    assert in_voxels.compute()["metrics"]["cpm"] == 1.0
    # ...but 3 mm off in mm, where the nodule's mean extent (8 + 4 + 2) / 3 mm gives a radius of 2.33 mm
    in_mm = DetectionMetric(num_classes=1)
    in_mm.update(pred, np.array([0.9]), np.zeros(1), truth, np.zeros(1), spacing=task.case_spacing(Scans(), 0))
    assert in_mm.compute()["metrics"]["cpm"] == 0.0
