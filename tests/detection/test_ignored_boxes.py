"""VOC "difficult" and COCO "iscrowd" boxes: read as ignored, left out of training targets, and scored as the
reference evaluations do (a detection on one is neither TP nor FP; it does not count in recall)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.io.formats import read_dataset
from medsight.metrics.detection import CROWD, DIFFICULT, DetectionMetric
from medsight.metrics.detection_bootstrap import class_matches, resample_scores


def test_voc_difficult_box_is_ignored_by_hand():
    # 2 scored boxes and a difficult one; ranked: TP (.9), on the difficult (.8, and again .75), FP (.7), TP (.6)
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50.0]])
    dets = np.array([[0, 0, 10, 10], [40, 40, 50, 50], [41, 40, 50, 50], [60, 60, 70, 70], [20, 20, 30, 30.0]])
    scores = np.array([0.9, 0.8, 0.75, 0.7, 0.6])
    metric = DetectionMetric(num_classes=1)
    metric.update(dets, scores, np.zeros(5), gt, np.zeros(3), gt_ignore=np.array([0, 0, DIFFICULT]))
    out = metric.compute()
    # kept TP, FP, TP over 2 boxes: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> 1/2 * 1 + 1/2 * 2/3
    assert out["metrics"]["map50_voc_allpoint"] == pytest.approx(0.5 + 1 / 3)
    assert out["metrics"]["mar_100"] == pytest.approx(1.0) and out["per_class"]["0"]["num_boxes"] == 2
    # scored as an ordinary box: TP, TP, FP (the duplicate), FP, TP over 3 -> 1/3 + 1/3 + 1/3 * 3/5
    plain = DetectionMetric(num_classes=1)
    plain.update(dets, scores, np.zeros(5), gt, np.zeros(3))
    assert plain.compute()["metrics"]["map50_voc_allpoint"] == pytest.approx(2 / 3 + 1 / 5)


def test_scored_box_is_matched_before_an_ignored_one():
    # the detection overlaps a difficult box more (IoU 1) than a scored one (IoU 0.6): COCOeval takes the scored
    gt = np.array([[0, 0, 10, 10], [0, 2, 10, 12.0]])
    metric = DetectionMetric(num_classes=1)
    metric.update(np.array([[0, 2, 10, 12.0]]), np.array([0.9]), np.zeros(1), gt, np.zeros(2),
                  gt_ignore=np.array([0, DIFFICULT]))
    values = metric.compute()["metrics"]
    assert values["map_50"] == pytest.approx(1.0) and values["map_75"] == 0.0  # at 0.75: on the ignored box


def coco_eval(images) -> np.ndarray:
    """pycocotools' 12 numbers; images: (pred boxes, scores, true boxes, iscrowd) per image, one class, xyxy."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    anns, dets = [], []
    for i, (pb, ps, gt, crowd) in enumerate(images):
        for b, c in zip(gt, crowd):
            w, h = b[2] - b[0], b[3] - b[1]
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "bbox": [b[0], b[1], w, h],
                         "area": float(w * h), "iscrowd": int(c)})
        dets += [{"image_id": i, "category_id": 1, "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]], "score": float(s)}
                 for b, s in zip(pb, ps)]
    api = COCO()
    api.dataset = {"images": [{"id": i, "width": 128, "height": 128} for i in range(len(images))],
                   "annotations": anns, "categories": [{"id": 1}]}
    with contextlib.redirect_stdout(io.StringIO()):
        api.createIndex()
        evaluator = COCOeval(api, api.loadRes(dets), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def crowd_case() -> list:
    rng = np.random.default_rng(7)
    images = [
        # a hit, two detections inside a crowd box (intersection over their own area: 1), a false positive
        (np.array([[0, 0, 10, 10], [25, 25, 35, 35], [40, 40, 52, 50], [90, 90, 100, 100.0]]), np.array([0.9, 0.8, 0.7, 0.6]),
         np.array([[0, 0, 10, 10], [20, 20, 60, 60.0]]), np.array([0, 1])),
        # a detection on a scored box that lies inside a crowd box: the scored box takes it
        (np.array([[30, 30, 40, 42.0], [0, 0, 8, 8]]), np.array([0.85, 0.5]),
         np.array([[30, 30, 40, 40], [10, 10, 80, 80.0]]), np.array([0, 1])),
        # only a crowd box: its image adds no reference, and the detection on it counts nowhere
        (np.array([[5, 5, 15, 15.0]]), np.array([0.95]), np.array([[0, 0, 20, 20.0]]), np.array([1])),
    ]
    for _ in range(8):  # random boxes, some of them crowds, and noisy detections with false positives
        gt = rng.uniform(0, 70, (4, 2))
        gt = np.concatenate([gt, gt + rng.uniform(6, 40, (4, 2))], 1)
        pb = np.concatenate([gt + rng.normal(0, 3, gt.shape), rng.uniform(0, 60, (3, 2)).repeat(2, 1) + [0, 0, 15, 15]])
        pb[:, 2:] = np.maximum(pb[:, 2:], pb[:, :2] + 1)
        images.append((pb, rng.uniform(0, 1, len(pb)), gt, (rng.uniform(size=4) < 0.3).astype(int)))
    return images


def test_crowd_boxes_match_pycocotools():
    images = crowd_case()
    stats = coco_eval(images)
    metric = DetectionMetric(num_classes=1)
    for pb, ps, gt, crowd in images:
        metric.update(pb, ps, np.zeros(len(pb)), gt, np.zeros(len(gt)), gt_ignore=np.asarray(crowd) * CROWD)
    got = metric.compute()["metrics"]
    for name, index in (("map_50_95", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert got[name] == pytest.approx(stats[index], abs=1e-6), name
    # the bootstrap's resampling of the same matches, drawing every image once, gives the same figures
    once = resample_scores([class_matches(metric, 0)], np.ones(len(images)))
    for name in ("map_50", "map_50_95", "map_75", "mar_100", "map50_voc_allpoint"):
        assert once[name] == pytest.approx(got[name], abs=1e-9), name


def flat_voc_with_difficult(root: Path) -> Path:
    root.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(root / f"im{i}.png")
        (root / f"im{i}.xml").write_text(
            f"<annotation><filename>im{i}.png</filename><size><width>64</width><height>48</height></size>"
            "<object><name>cell</name><difficult>0</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax>"
            "<ymax>10</ymax></bndbox></object><object><name>cell</name><difficult>1</difficult><bndbox><xmin>31</xmin>"
            "<ymin>21</ymin><xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>")
    return root


class Config:
    def __init__(self, root):
        self.batch_size, self.extra = 2, {"cache_dir": str(root)}


def test_difficult_boxes_are_no_training_target_and_not_scored(tmp_path):
    from medsight.tasks.detection.plan import make_detection_plan
    from medsight.tasks.detection.task import DetectionTask

    dataset = read_dataset(flat_voc_with_difficult(tmp_path / "d"))
    np.testing.assert_array_equal(dataset.box_kinds(0), [0, DIFFICULT])
    assert dataset.summary()["ignored_boxes"] == 4
    task = DetectionTask(make_detection_plan(dataset), {"classes": list(dataset.classes)})
    task.configure(Config(tmp_path / "cache"), dataset)
    assert all(len(case.boxes) == 1 for case in task.train_cases)  # the difficult box is no target
    # a detector that finds the scored boxes and not the difficult ones is perfect by the VOC rule
    task.cache_cases = lambda *args: None
    task.predict_case = lambda models, data, index: {"boxes": data.boxes[index][:1], "scores": np.ones(1),
                                                     "labels": np.zeros(1, int)}
    result, _ = task.score_cases([None], dataset, np.arange(4))
    assert result["metrics"]["map50_voc_allpoint"] == 1.0 and result["metrics"]["mar_100"] == 1.0


def test_coco_iscrowd_is_read_as_crowd(tmp_path):
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(tmp_path / "a.png")
    anns = [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [0, 0, 30, 20], "iscrowd": 1}]
    (tmp_path / "annotations.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 32}], "annotations": anns,
        "categories": [{"id": 1, "name": "cell"}]}))
    dataset = read_dataset(tmp_path)
    np.testing.assert_array_equal(dataset.box_kinds(0), [0, CROWD])
    boxes, labels = dataset.training_boxes(0)
    np.testing.assert_allclose(boxes, [[3, 2, 8, 12]])
    assert len(labels) == 1
