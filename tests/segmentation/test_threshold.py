"""The binary foreground threshold chosen on validation: Dice per threshold, the choice, and its use at predict."""

import numpy as np
import torch
from sklearn.metrics import f1_score

from medsight.tasks.segmentation.infer import predict_label
from medsight.tasks.segmentation.threshold import (THRESHOLDS, choose_threshold, dice_at_thresholds, level_of,
                                                   quantise)


def test_dice_per_threshold_matches_scikit_learn_f1():
    rng = np.random.default_rng(0)
    truth = rng.random((40, 30)) < 0.2
    p = np.clip(truth * 0.35 + rng.random((40, 30)) * 0.6, 0, 1)
    levels = quantise(p)
    got = dice_at_thresholds(levels, truth)
    for t, dice in zip(THRESHOLDS, got):
        expected = f1_score(truth.ravel(), (levels > level_of(t)).ravel())
        assert abs(dice - expected) < 1e-12
    # at 0.5 the quantised rule is the two-channel argmax, away from the tie
    far = np.abs(p - 0.5) > 0.01
    assert np.array_equal((levels > level_of(0.5))[far], (p > 0.5)[far])


def test_an_under_confident_network_gets_a_lower_threshold():
    truth = np.zeros((20, 20), bool)
    truth[5:10, 5:10] = True
    p = np.where(truth, 0.35, 0.1)  # every vessel pixel below 0.5: argmax finds nothing
    chosen = choose_threshold([dice_at_thresholds(quantise(p), truth)])
    assert chosen["val_dice_at_half"] == 0.0
    assert chosen["foreground_threshold"] == 0.15  # the first threshold separating 0.1 from 0.35
    assert chosen["val_dice_at_threshold"] == 1.0


def test_no_clear_gain_keeps_the_argmax():
    truth = np.zeros((20, 20), bool)
    truth[5:10, 5:10] = True
    p = np.where(truth, 0.9, 0.05)  # every threshold from 0.1 to 0.9 separates them alike
    assert choose_threshold([dice_at_thresholds(quantise(p), truth)])["foreground_threshold"] == 0.5


class Logit(torch.nn.Module):
    """Two-channel logits (0, x): the foreground probability is sigmoid(image)."""

    def forward(self, x):
        return torch.cat([torch.zeros_like(x), x], dim=1)


def test_predict_label_applies_the_chosen_threshold():
    image = np.full((1, 8, 8), -2.0, np.float32)  # sigmoid(-2) = 0.12
    image[0, 2:5, 2:5] = -0.85  # sigmoid(-0.85) = 0.30
    plan = {"target_spacing": [1.0, 1.0], "normalization": [{"scheme": "ct", "mean": 0.0, "std": 1.0, "clip": [-10, 10]}],
            "patch_size": [8, 8], "inference": {"overlap": 0.5, "mirror_axes": [0, 1], "sw_batch_size": 1, "tta": False}}
    label, _ = predict_label([Logit()], image, (1.0, 1.0), plan, {})
    assert label.sum() == 0
    label, _ = predict_label([Logit()], image, (1.0, 1.0), plan, {"postprocessing": {"foreground_threshold": 0.25}})
    assert label[2:5, 2:5].all() and label.sum() == 9


def under_confident_task(cases):
    """A segmentation task whose validation predictions are the given (label, foreground probability) pairs."""
    from types import SimpleNamespace

    from medsight.tasks.segmentation.task import SegmentationTask

    task = object.__new__(SegmentationTask)
    task.plan = {"labels": {"0": "background", "1": "vessel"}}
    task.validation_subset = lambda indices: indices

    def cached_predictions(model, indices):
        for label, p in cases:
            yield SimpleNamespace(label=label), torch.from_numpy(np.stack([1 - p, p]).astype(np.float32))

    task.cached_predictions = cached_predictions
    return task


def test_finish_training_chooses_the_threshold_then_the_largest_component():
    label = np.zeros((30, 30), np.uint8)
    label[5:10, 2:28] = 1
    p = np.where(label == 1, 0.35, 0.05)
    p[25, 25] = 0.4  # a speck more confident than the vessel, away from it: no threshold keeps one without the other
    task = under_confident_task([(label, p), (label, p)])
    post = task.finish_training(None, None, np.arange(2))["postprocessing"]
    assert post["foreground_threshold"] == 0.1 and post["val_dice_at_half"] == 0.0  # 0.1-0.3 tie: the first
    assert post["val_dice_per_class"][0] < 1.0  # the speck is a false positive at 0.1 ...
    assert post["largest_component"] == [1]  # ... which the largest component removes
    assert post["val_dice_per_class_largest_component"] == [1.0]
