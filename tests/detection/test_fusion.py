"""Weighted box fusion of an ensemble's detections, checked against hand-computed boxes and scores."""

import numpy as np
import torch

from medsight.tasks.detection.fusion import fuse_detections


def member(boxes, scores, labels):
    return {"boxes": np.asarray(boxes, np.float32), "scores": np.asarray(scores, np.float32),
            "labels": np.asarray(labels, np.int64)}


def test_agreeing_boxes_are_averaged_by_score():
    a = member([[10, 10, 30, 30]], [0.9], [0])
    b = member([[12, 10, 32, 30]], [0.6], [0])  # IoU 18x20 / (2x400 - 360) = 0.818
    fused = fuse_detections([a, b])
    assert len(fused["scores"]) == 1
    expected = (0.9 * np.array([10, 10, 30, 30]) + 0.6 * np.array([12, 10, 32, 30])) / 1.5
    assert np.allclose(fused["boxes"][0], expected, atol=1e-5)
    assert np.isclose(fused["scores"][0], 0.75)  # mean of 0.9 and 0.6; both detectors found it


def test_a_box_one_of_two_detectors_found_keeps_half_its_score():
    a = member([[10, 10, 30, 30], [50, 50, 60, 60]], [0.9, 0.8], [0, 0])
    b = member([[10, 10, 30, 30]], [0.7], [0])
    fused = fuse_detections([a, b])
    assert np.allclose(fused["scores"], [0.8, 0.4])
    assert np.allclose(fused["boxes"][1], [50, 50, 60, 60])


def test_classes_and_distant_boxes_are_not_fused():
    a = member([[10, 10, 30, 30]], [0.9], [0])
    b = member([[10, 10, 30, 30], [14, 10, 34, 30]], [0.8, 0.5], [1, 0])  # a class-1 copy; IoU 0.667 at class 0
    c = member([[40, 40, 50, 50]], [0.3], [0])
    fused = fuse_detections([a, b, c])
    order = np.lexsort((fused["scores"], fused["labels"]))
    labels, scores = fused["labels"][order], fused["scores"][order]
    assert list(labels) == [0, 0, 1]
    assert np.allclose(sorted(scores[:2]), [0.1, (0.9 + 0.5) / 2 * 2 / 3])
    assert np.isclose(scores[2], 0.8 / 3)


def test_three_dimensional_boxes_and_empty_members():
    a = member([[0, 0, 0, 4, 4, 4]], [0.8], [2])
    b = member(np.zeros((0, 6)), [], [])
    fused = fuse_detections([a, b])
    assert fused["boxes"].shape == (1, 6) and np.isclose(fused["scores"][0], 0.4)
    empty = fuse_detections([b, b])
    assert empty["boxes"].shape == (0, 6) and len(empty["scores"]) == 0


class Fixed(torch.nn.Module):
    """A detector that finds the same boxes in every image."""

    def __init__(self, boxes, scores):
        super().__init__()
        self.boxes, self.scores = torch.tensor(boxes, dtype=torch.float32), torch.tensor(scores)

    def forward(self, x):
        return [{"boxes": self.boxes, "scores": self.scores, "labels": torch.zeros(len(self.scores), dtype=torch.long)}]


def test_an_ensemble_fuses_or_suppresses_as_the_plan_says():
    from medsight.tasks.detection.infer import detect_prepared

    members = [Fixed([[10, 10, 30, 30]], [0.9]), Fixed([[12, 10, 32, 30]], [0.6])]
    plan = {"spatial_dims": 2, "patch_size": [64, 64], "size_divisor": 32}
    image = torch.zeros(1, 64, 64)
    suppressed = detect_prepared(members, image, plan, torch.device("cpu"))
    assert np.allclose(suppressed["boxes"], [[10, 10, 30, 30]]) and np.allclose(suppressed["scores"], [0.9])
    fused = detect_prepared(members, image, {**plan, "ensemble_fusion": "wbf"}, torch.device("cpu"))
    assert np.allclose(fused["boxes"], [[10.8, 10, 30.8, 30]], atol=1e-4) and np.allclose(fused["scores"], [0.75])
