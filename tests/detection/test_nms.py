"""Class-wise greedy NMS against the single-matrix NMS it replaced, on random boxes, ties and empty input."""

import numpy as np
import pytest
import torch

from medsight.models.detection.boxes import nms, pairwise_iou


def matrix_nms(boxes, scores, threshold, labels=None):
    """The previous NMS: one IoU matrix over all boxes, classes shifted far apart so they never overlap."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    order = scores.argsort(descending=True)
    boxes = boxes[order].float()
    if labels is not None:
        boxes = boxes + (boxes.max() + 1) * labels[order].to(boxes)[:, None]
    dims = boxes.shape[1] // 2
    low = torch.maximum(boxes[:, None, :dims], boxes[None, :, :dims])
    high = torch.minimum(boxes[:, None, dims:], boxes[None, :, dims:])
    inter = (high - low).clamp(min=0).prod(-1)
    volume = (boxes[:, dims:] - boxes[:, :dims]).prod(-1)
    overlap = (inter / (volume[:, None] + volume[None, :] - inter).clamp(min=1e-6) > threshold).numpy()
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
            suppressed |= overlap[i]
    return order[torch.as_tensor(keep, dtype=torch.long)]


def random_boxes(generator, count, dims, grid=None):
    corner = torch.rand(count, dims, generator=generator) * (60 if dims == 2 else 20)
    size = torch.rand(count, dims, generator=generator) * 20 + 1
    boxes = torch.cat([corner, corner + size], 1)
    return boxes if grid is None else (boxes / grid).round() * grid


@pytest.mark.parametrize("dims", [2, 3])
def test_same_kept_indices_as_the_matrix_nms_without_labels(dims):
    generator = torch.Generator().manual_seed(dims)
    for trial in range(3):
        boxes = random_boxes(generator, 300, dims)
        scores = torch.rand(300, generator=generator)
        for threshold in (0.3, 0.5, 0.7):
            expected = matrix_nms(boxes, scores, threshold)
            if threshold == 0.3:
                assert 20 < len(expected) < 280  # the case suppresses some and keeps some
            assert torch.equal(nms(boxes, scores, threshold), expected)
            assert torch.equal(nms(boxes, scores, threshold, max_keep=20), expected[:20])


@pytest.mark.parametrize("dims", [2, 3])
def test_same_kept_indices_with_labels_ties_and_touching_boxes(dims):
    # coordinates on a quarter-pixel grid, so the old code's class shift is exact and IoUs tie often;
    # scores drawn from 8 values, so equal scores are common
    generator = torch.Generator().manual_seed(10 + dims)
    for trial in range(3):
        boxes = random_boxes(generator, 400, dims, grid=0.25)
        boxes[:50] = boxes[50:100]  # exact duplicates: IoU 1
        scores = torch.randint(0, 8, (400,), generator=generator).float() / 8
        labels = torch.randint(0, 4, (400,), generator=generator)
        for threshold in (0.0, 0.4, 0.7):
            expected = matrix_nms(boxes, scores, threshold, labels)
            got = nms(boxes, scores, threshold, labels)
            assert torch.equal(got, expected)
            assert torch.equal(nms(boxes, scores, threshold, labels, max_keep=25), expected[:25])


def test_labels_only_suppress_their_own_class():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10], [30, 30, 40, 40]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]
    # box 1 is another class than box 0; box 2 (IoU 0.81 with 0) is suppressed by box 0
    assert nms(boxes, scores, 0.5, torch.tensor([0, 1, 0, 0])).tolist() == [0, 1, 3]
    assert nms(boxes, scores, 0.5, torch.tensor([0, 1, 0, 0]), max_keep=2).tolist() == [0, 1]


def test_empty_input_and_zero_keep():
    empty = nms(torch.zeros((0, 4)), torch.zeros(0), 0.5, torch.zeros(0, dtype=torch.long))
    assert empty.dtype == torch.long and empty.shape == (0,)
    assert nms(torch.zeros((0, 6)), torch.zeros(0), 0.5).shape == (0,)
    assert nms(torch.tensor([[0.0, 0, 1, 1]]), torch.tensor([1.0]), 0.5, max_keep=0).shape == (0,)


def test_pairwise_iou_by_hand():
    a = torch.tensor([[0.0, 0, 2, 2], [0, 0, 1, 1]])
    b = torch.tensor([[1.0, 1, 3, 3], [5, 5, 6, 6]])
    # [0,0,2,2] and [1,1,3,3]: intersection 1, union 4 + 4 - 1 = 7
    assert torch.allclose(pairwise_iou(a, b), torch.tensor([[1 / 7, 0.0], [0.0, 0.0]]))
    cube = torch.tensor([[0.0, 0, 0, 2, 2, 2]])
    half = torch.tensor([[0.0, 0, 0, 2, 2, 1]])
    assert torch.allclose(pairwise_iou(cube, half), torch.tensor([[0.5]]))


def test_chunks_smaller_than_the_block_give_the_same_boxes():
    from medsight.models.detection.boxes import greedy_keep

    generator = torch.Generator().manual_seed(7)
    boxes = random_boxes(generator, 200, 2)
    ranked = boxes[torch.rand(200, generator=generator).argsort()]
    whole = greedy_keep(ranked, 0.3, chunk=200)
    assert 20 < len(whole) < 180
    for chunk in (1, 7, 64):
        assert np.array_equal(greedy_keep(ranked, 0.3, chunk=chunk), whole)
        assert np.array_equal(greedy_keep(ranked, 0.3, max_keep=15, chunk=chunk), whole[:15])
