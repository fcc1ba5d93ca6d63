"""Scale augmentation of detection patches: the window read, the resize, and the boxes moved with the pixels."""

import numpy as np
import torch

from medsight.tasks.detection.data import Case, EpochBatches, resize_patch, zoomed_window


def test_no_zoom_reads_the_patch_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    assert zoomed_window([64, 80], None, g) == [64, 80]
    assert torch.equal(g.get_state(), state)


def test_windows_stay_in_the_zoom_range():
    g = torch.Generator().manual_seed(1)
    sizes = np.array([zoomed_window([100, 100], [0.8, 1.25], g) for _ in range(200)])
    assert sizes.min() >= 80 and sizes.max() <= 125
    assert (sizes[:, 0] < 100).any() and (sizes[:, 0] > 100).any()
    assert (sizes[:, 0] == sizes[:, 1]).all()  # the same factor on both axes


def test_resized_boxes_cover_the_resized_object():
    image = torch.zeros(1, 50, 40)
    image[0, 10:20, 5:25] = 1.0  # an object with the box (10, 5, 20, 25) in (y0, x0, y1, x1)
    out, boxes = resize_patch(image, np.array([[10.0, 5.0, 20.0, 25.0]]), [100, 80])
    assert out.shape == (1, 100, 80)
    assert np.allclose(boxes, [[20.0, 10.0, 40.0, 50.0]])
    inside = out[0] > 0.5
    ys, xs = np.nonzero(inside.numpy())
    assert (ys.min(), ys.max() + 1, xs.min(), xs.max() + 1) == (20, 40, 10, 50)


def test_zoomed_batches_keep_the_patch_shape_and_their_boxes_inside():
    rng = np.random.default_rng(0)
    cases = [Case(torch.from_numpy(rng.normal(size=(1, 120, 150)).astype(np.float16)),
                  np.array([[30.0, 40.0, 50.0, 70.0], [80.0, 90.0, 95.0, 110.0]]), np.array([0, 1]))]
    plan = {"patch_size": [64, 64], "positive_fraction": 1.0, "augment": {"zoom": [0.8, 1.25]}}
    batches = EpochBatches(cases, plan, batch_size=4, steps=6, seed=0)
    sides = []
    for batch in batches:
        assert batch["image"].shape == (4, 1, 64, 64)
        for boxes in batch["boxes"]:
            assert (boxes >= 0).all() and (boxes <= 64 + 1e-4).all()
            sides += list((boxes[:, 2] - boxes[:, 0]).numpy())
    # the 20-pixel-high box is seen at other sizes than 20 (boxes cut by the patch edge are shorter still)
    assert max(sides) > 20.5
