"""Every registered segmentation model: forward/backward in 2D and 3D, output shape, no NaN, weights round trip."""

from __future__ import annotations

import pytest
import torch

from medsight.models import create_model, list_models
from medsight.run import load_weights, save_weights

SEGMENTATION_MODELS = [e.name for e in list_models("segmentation")]
TOPOLOGY = {2: ([[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]]), 3: ([[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]])}


def test_registry_holds_nnunet_unet_and_lighter_models():
    assert {"dynunet", "dynunet_lite", "dynunet_tiny", "unet"} <= set(SEGMENTATION_MODELS)


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("name", SEGMENTATION_MODELS)
def test_forward_backward_and_weights(name: str, dims: int, tmp_path):
    torch.manual_seed(0)
    kernels, strides = TOPOLOGY[dims]
    model = create_model(name, task="segmentation", spatial_dims=dims, in_channels=2, num_classes=3,
                         kernel_sizes=kernels, strides=strides)
    x = torch.randn(2, 2, *[16] * dims)
    model.train()
    out = model(x)
    main = out[:, 0] if out.ndim == dims + 3 else out  # deep supervision stacks the heads on dim 1
    assert main.shape == (2, 3, *[16] * dims)
    main.mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    assert expected.shape == (2, 3, *[16] * dims)
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    again = create_model(name, task="segmentation", spatial_dims=dims, in_channels=2, num_classes=3,
                         kernel_sizes=kernels, strides=strides)
    again.load_state_dict(load_weights(tmp_path / "w.safetensors"))
    again.eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), expected)
