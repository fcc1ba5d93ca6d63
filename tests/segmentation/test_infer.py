"""Inference pieces: in-place softmax, slab argmax, mirror sets, largest component, patch cropping, sliding windows."""

from __future__ import annotations

import numpy as np
import torch

from medsight.data.patches import crop, patch_start
from medsight.tasks.segmentation.infer import argmax_slabs, largest_component, mirror_sets, sliding_probabilities, softmax_


def test_inplace_softmax_and_slab_argmax_match_torch():
    logits = torch.randn(1, 3, 20, 9, 7)
    torch.testing.assert_close(softmax_(logits.clone()), torch.softmax(logits, 1))
    probs = torch.softmax(torch.randn(3, 40, 5, 6), 0)
    assert (argmax_slabs(probs, slab=7) == probs.argmax(0).numpy()).all()


def test_mirror_sets():
    assert mirror_sets([0, 1]) == [(), (0,), (1,), (0, 1)]
    assert len(mirror_sets([0, 1, 2])) == 8


def test_largest_component_per_class():
    label = np.zeros((10, 10), np.uint8)
    label[0:3, 0:3] = 1  # 9 voxels
    label[8, 8] = 1  # a stray voxel of class 1
    label[5, 5] = 2  # a single class-2 voxel stays (it is its class's largest component)
    out = largest_component(label, [1, 2])
    assert out[8, 8] == 0 and out[0:3, 0:3].all() and out[5, 5] == 2


def test_crop_pads_outside_the_volume():
    array = np.arange(16).reshape(4, 4)
    out = crop(array, [-1, 2], [3, 3], leading=0)
    assert out.tolist() == [[0, 0, 0], [2, 3, 0], [6, 7, 0]]
    rng = np.random.default_rng(0)
    starts = [patch_start([4, 10], [6, 4], rng) for _ in range(50)]
    assert all(-2 <= a <= 0 and 0 <= b <= 6 for a, b in starts)


def test_sliding_window_with_identity_network_returns_its_softmax():
    plan = {"patch_size": [8, 8], "inference": {"overlap": 0.5, "mirror_axes": [0, 1], "sw_batch_size": 2}}
    image = torch.randn(2, 20, 13)
    probs = sliding_probabilities([torch.nn.Identity()], image, plan, tta=True)
    torch.testing.assert_close(probs, torch.softmax(image, 0), atol=1e-5, rtol=1e-5)
