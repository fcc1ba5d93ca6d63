"""Test-time mirroring for classification: the mean of the logits over every subset of the training flips."""

import torch
import torch.nn as nn

from medsight.tasks.classification.task import ClassificationTask


class LeftHeavy(nn.Module):
    """Logits that change under a left-right flip: (sum of the left half, sum of the right half)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        return torch.stack([x[..., :half].sum((1, 2, 3)), x[..., half:].sum((1, 2, 3))], 1)


def task(flip_axes, tta):
    plan = {"task": "classification", "spatial_dims": 2, "in_channels": 1, "num_classes": 2, "input_size": [4, 6],
            "multilabel": False, "augment": {"flip_axes": flip_axes}, "inference": {"tta": tta}}
    return ClassificationTask(plan, {"task": "classification", "classes": ["a", "b"]})


def test_mirroring_averages_the_flipped_logits():
    images = torch.zeros(3, 1, 4, 6)
    images[0, 0, :, :3] = 1.0  # all the mass on the left: logits (12, 0), mirrored (0, 12)
    images[1, 0, 0, 5] = 2.0   # on the right: (0, 2), mirrored (2, 0)
    plain = task([1], False).predict_tensor(LeftHeavy(), images)
    assert torch.equal(plain[0], torch.tensor([12.0, 0.0]))
    mirrored = task([1], True).predict_tensor(LeftHeavy(), images)
    assert torch.allclose(mirrored, torch.tensor([[6.0, 6.0], [1.0, 1.0], [0.0, 0.0]]))
    # per-epoch validation keeps one pass whatever the plan says
    assert torch.equal(task([1], True).predict_tensor(LeftHeavy(), images, tta=False), plain)


def test_only_the_trained_flips_are_used():
    assert task([1], True).test_time_flips == [(), (1,)]
    assert task([0, 1], True).test_time_flips == [(), (0,), (1,), (0, 1)]
    assert task([], True).test_time_flips == [()]          # no flips in training: none at test time
    assert task([1], False).test_time_flips == [()]
    updown = task([0], True).predict_tensor(LeftHeavy(), torch.ones(1, 1, 4, 6))  # an up-down flip leaves it
    assert torch.allclose(updown, torch.tensor([[12.0, 12.0]]))
