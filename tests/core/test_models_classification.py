"""Every registered classification model: forward, backward, shape, finite outputs, save and reload."""

from __future__ import annotations

import pytest
import torch

from medsight.models import create_model, list_models
from medsight.run import load_weights, save_weights

CASES = [(entry.name, dims) for entry in list_models("classification") for dims in entry.spatial_dims]
# The smallest input each family is built for, per dimension (ImageNet-style stems need more pixels).
SIZES = {2: 28, 3: 16}


def test_registry_has_the_classification_families():
    names = {entry.name for entry in list_models("classification")}
    assert {"lenet5", "alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50"} <= names
    assert {"convnext_small_input", "efficientnet_b0"} & names


@pytest.mark.parametrize("name,dims", CASES, ids=[f"{n}-{d}d" for n, d in CASES])
def test_forward_backward_save_load(name, dims, tmp_path):
    torch.manual_seed(0)
    size = SIZES[dims]
    model = create_model(name, task="classification", spatial_dims=dims, in_channels=2, num_classes=3,
                         input_size=size)
    x = torch.randn(2, 2, *[size] * dims)
    logits = model(x)
    assert logits.shape == (2, 3)
    assert torch.isfinite(logits).all()
    logits.logsumexp(1).mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)

    path = tmp_path / "model.safetensors"
    save_weights(path, model.state_dict())
    with torch.device("meta"):  # no second weight initialisation: the reload fills every tensor
        again = create_model(name, task="classification", spatial_dims=dims, in_channels=2, num_classes=3,
                             input_size=size)
    again.load_state_dict(load_weights(path), assign=True)
    model.eval(), again.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), again(x))


def test_unknown_model_names_the_choices():
    from medsight.errors import MedsightError

    with pytest.raises(MedsightError, match="unknown model 'resnet999'.*resnet18"):
        create_model("resnet999", task="classification", spatial_dims=2, in_channels=1, num_classes=2)
