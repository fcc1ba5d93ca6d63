"""Every registered detection model: forward/backward in training, detections in eval, 2D and 3D, tiny inputs."""

from __future__ import annotations

import sys

import pytest
import torch

from medsight.models import create_model, list_models

NAMES = [e.name for e in list_models("detection")]


def test_registry_has_both_families():
    assert {"retinanet", "faster_rcnn"} <= set(NAMES)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_and_detect(name, dims):
    torch.manual_seed(0)
    size = (32, 32) if dims == 2 else (16, 16, 16)
    model = create_model(name, task="detection", spatial_dims=dims, in_channels=1, num_classes=2,
                         anchor_shapes=[[4.0] * dims, [6.0] * dims], feature_map_scales=[1, 2, 4, 8], stem_stride=2,
                         max_pool=False)
    box = torch.tensor([[2.0] * dims + [9.0] * dims])
    targets = [{"boxes": box, "labels": torch.tensor([1])}, {"boxes": torch.zeros(0, 2 * dims), "labels": torch.zeros(0, dtype=torch.long)}]
    model.train()
    losses = model(torch.rand(2, 1, *size), targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    with torch.no_grad():
        out = model(torch.rand(1, 1, *size))
    assert out[0]["boxes"].shape[1] == 2 * dims
    restored = create_model(name, task="detection", spatial_dims=dims, in_channels=1, num_classes=2,
                            anchor_shapes=[[4.0] * dims, [6.0] * dims], feature_map_scales=[1, 2, 4, 8], stem_stride=2,
                            max_pool=False)
    restored.load_state_dict(model.state_dict())
    assert "torchvision" not in sys.modules
