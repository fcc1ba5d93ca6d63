"""Every registered model exposes its parts (encoder, head, and a U-Net's decoder) as modules.

Freezing, --init and pre-training name these modules; so the parts must cover every tensor of the state
dict exactly once, and the head must be what changes with the number of classes.
"""

from __future__ import annotations

import pytest
import torch

from medsight.errors import MedsightError
from medsight.models import create_model, list_models
from medsight.models.parts import part, part_keys

ARGUMENTS = {
    "classification": {"spatial_dims": 2, "in_channels": 1, "input_size": 28},
    "segmentation": {"spatial_dims": 2, "in_channels": 1, "kernel_sizes": None, "strides": None},
    "detection": {"spatial_dims": 2, "in_channels": 1, "anchor_shapes": [[8, 8]], "feature_map_scales": [1, 2]},
}
NAMES = [entry.name for entry in list_models()]


def build(name: str, num_classes: int):
    entry = next(e for e in list_models() if e.name == name)
    torch.manual_seed(0)
    return create_model(name, task=entry.task, num_classes=num_classes, **ARGUMENTS[entry.task]), entry.task


@pytest.mark.parametrize("name", NAMES)
def test_the_parts_cover_the_state_dict_once(name):
    model, task = build(name, 3)
    keys = list(model.state_dict())
    parts = {p: set(part_keys(model, p)) for p in ("encoder", "decoder", "head") if hasattr(model, p)}
    assert parts["encoder"] and parts["head"]
    assert ("decoder" in parts) == (task == "segmentation")
    assert sorted(k for keys_of in parts.values() for k in keys_of) == sorted(keys)


@pytest.mark.parametrize("name", NAMES)
def test_the_head_is_what_the_number_of_classes_changes(name):
    three, _ = build(name, 3)
    five, _ = build(name, 5)
    differ = {k for k, v in three.state_dict().items() if five.state_dict()[k].shape != v.shape}
    assert differ and differ <= set(part_keys(three, "head"))


def test_freezing_the_encoder_leaves_the_head_training():
    model, _ = build("resnet18_half", 2)
    part(model, "encoder").requires_grad_(False)
    model(torch.randn(2, 1, 28, 28)).sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.head.parameters())


def test_a_plan_key_no_builder_takes_is_named():
    with pytest.raises(MedsightError, match=r"plan\.json: model 'unet' takes no 'patch_sise'"):
        create_model("unet", task="segmentation", num_classes=2, patch_sise=[16, 16], **ARGUMENTS["segmentation"])
