"""RoI align in plain PyTorch against hand-computed values (torchvision's aligned=True convention)."""

from __future__ import annotations

import torch

from medsight.models.detection.roi_align import roi_align


def test_2d_bins_average_their_pixels():
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = roi_align(features, torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([0]), (2, 2), 1.0, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))


def test_2d_bilinear_between_pixel_centres_and_scale():
    features = torch.arange(16.0).reshape(1, 1, 4, 4)
    # box (1, 1)-(3, 3) at scale 0.5 -> (0.5, 0.5)-(1.5, 1.5): one sample at (1.0, 1.0), i.e. between the
    # centres of pixels (0,0), (0,1), (1,0), (1,1): (0 + 1 + 4 + 5) / 4 = 2.5
    out = roi_align(features, torch.tensor([[1.0, 1.0, 3.0, 3.0]]), torch.tensor([0]), (1, 1), 0.5, 1)
    assert out.item() == 2.5


def test_3d_and_batch_index():
    features = torch.stack([torch.zeros(1, 4, 4, 4), torch.arange(64.0).reshape(1, 4, 4, 4)])
    out = roi_align(features, torch.tensor([[0.0, 0.0, 0.0, 2.0, 2.0, 2.0]]), torch.tensor([1]), (1, 1, 1), 1.0, 2)
    assert out.item() == (0 + 1 + 4 + 5 + 16 + 17 + 20 + 21) / 8
    assert roi_align(features, torch.zeros(0, 6), torch.zeros(0, dtype=torch.long), (2, 2, 2), 1.0).shape == (0, 1, 2, 2, 2)


def test_gradient_reaches_features():
    features = torch.rand(1, 2, 8, 8, requires_grad=True)
    roi_align(features, torch.tensor([[1.0, 2.0, 6.0, 7.0]]), torch.tensor([0]), (3, 3), 1.0).sum().backward()
    assert features.grad is not None and features.grad.abs().sum() > 0


def test_same_values_as_one_copy_of_the_map_per_roi():
    # the plain formulation: every RoI sampled from its own copy of its image's map
    import torch.nn.functional as F

    generator = torch.Generator().manual_seed(0)
    for dims in (2, 3):
        features = torch.rand(3, 4, *([12] * dims), generator=generator)
        corner = torch.rand(10, dims, generator=generator) * 30
        boxes = torch.cat([corner, corner + torch.rand(10, dims, generator=generator) * 15 + 1], 1)
        batch = torch.tensor([2, 0, 0, 1, 2, 2, 0, 1, 1, 0])
        out = roi_align(features, boxes, batch, (3,) * dims, 0.4, 2)
        for k in range(10):
            alone = roi_align(features[batch[k]][None], boxes[k:k + 1], torch.tensor([0]), (3,) * dims, 0.4, 2)
            assert torch.allclose(out[k], alone[0], atol=1e-6)
        # one RoI on its image alone is the textbook call: a grid of 6 samples per axis, 2x2 averaged
        low, high = boxes[0, :dims] * 0.4, boxes[0, dims:] * 0.4
        axes = [(low[d] + (torch.arange(6) + 0.5) / 6 * (high[d] - low[d])) * 2 / 12 - 1 for d in range(dims)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], -1)[None]
        textbook = F.grid_sample(features[2:3], grid, align_corners=False)
        textbook = (F.avg_pool2d if dims == 2 else F.avg_pool3d)(textbook, 2)[0]
        assert torch.allclose(out[0], textbook, atol=1e-6)
