"""Greedy NMS a block at a time: the same boxes as MONAI's NMS, across block edges, and a prefix under a limit."""

from __future__ import annotations

import numpy as np
import torch
from monai.data.box_utils import non_max_suppression

from medsight.models.detection import boxes as box_ops


def random_boxes(n: int, dims: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 60, (n, dims))
    size = rng.uniform(2, 12, (n, dims))
    scores = rng.permutation(n) / n  # distinct scores: one greedy order
    return torch.tensor(np.concatenate([low, low + size], 1), dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)


def test_blockwise_nms_equals_monai_across_block_edges(monkeypatch):
    monkeypatch.setattr(box_ops, "NMS_BLOCK", 32)  # 300 boxes: ten blocks
    for dims, seed in [(2, 0), (3, 1)]:
        boxes, scores = random_boxes(300, dims, seed)
        expected = non_max_suppression(boxes, scores, nms_thresh=0.3)
        got = box_ops.nms(boxes, scores, 0.3)
        assert 40 < len(got) < 300  # some boxes suppressed, some kept
        np.testing.assert_array_equal(got.numpy(), expected.numpy())
        np.testing.assert_array_equal(box_ops.nms(boxes, scores, 0.3, limit=30).numpy(), expected[:30].numpy())


def test_boxes_of_another_class_are_not_suppressed():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10]])
    scores, labels = torch.tensor([0.9, 0.8, 0.7]), torch.tensor([0, 0, 1])
    assert box_ops.nms(boxes, scores, 0.5, labels).tolist() == [0, 2]
