"""Devices without a GPU: every registered model and loss on PyTorch's `meta` device, and a fake-device check.

A tensor left on the CPU (a buffer never moved, a tensor made inside forward without a device) meets the meta
tensors of the model and fails with "Tensor on device cpu is not on the expected device meta", which is the
error a CUDA run would raise on its first step.

Detection matches boxes with data-dependent steps (``.item()``, NMS) that the meta device cannot run, so its
models run on real CPU tensors under ``torch.device("meta")`` as the default device instead: what they create
without naming a device lands on meta and collides with the CPU tensors in the same way. (Only detection:
MONAI's losses compute shapes with ``torch.arange(...).tolist()``, harmless on a GPU, which this check rejects.)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from medsight.config import TrainConfig
from medsight.errors import MedsightError
from medsight.models import create_model, list_models
from medsight.device import resolve_device
from medsight.training.precision import Precision, amp_dtype

META = torch.device("meta")
TOPOLOGY = {2: ([[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]]), 3: ([[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]])}
CASES = [(e.task, e.name, d) for e in list_models() for d in e.spatial_dims]
BALANCES = [("none", False), ("weights", False), ("focal", False), ("weights", True)]  # (balance, multilabel)


def classification_task(dims: int, multilabel: bool = False):
    from medsight.tasks.classification.task import ClassificationTask

    size = 32 if dims == 2 else 16
    plan = {"task": "classification", "spatial_dims": dims, "in_channels": 1, "num_classes": 3,
            "input_size": [size] * dims, "class_weights": [0.5, 1.0, 1.5], "multilabel": multilabel, "batch_size": 2,
            "augment": {"flip_axes": [0]}}
    return ClassificationTask(plan, {"task": "classification", "classes": ["a", "b", "c"]})


def segmentation_task(dims: int):
    from medsight.tasks.segmentation.task import SegmentationTask

    kernels, strides = TOPOLOGY[dims]
    plan = {"task": "segmentation", "spatial_dims": dims, "in_channels": 1, "num_classes": 3, "kernel_sizes": kernels,
            "strides": strides, "patch_size": [16] * dims, "deep_supervision": True, "batch_size": 2,
            "labels": {"0": "background", "1": "a", "2": "b"}}
    return SegmentationTask(plan, {"task": "segmentation"})


def detection_task(dims: int):
    from medsight.tasks.detection.task import DetectionTask

    plan = {"task": "detection", "spatial_dims": dims, "in_channels": 1, "num_classes": 2,
            "anchor_shapes": [[4.0] * dims, [6.0] * dims], "feature_map_scales": [1, 2, 4, 8], "stem_stride": 2,
            "max_pool": False, "batch_size": 2}
    return DetectionTask(plan, {"task": "detection", "classes": ["a", "b"]})


def task_and_batch(task_name: str, dims: int, balance: str = "none", multilabel: bool = False, device=META):
    """A configured task whose losses are built on device (as the loop does: device first, then configure)."""
    task = {"classification": lambda: classification_task(dims, multilabel), "segmentation": lambda: segmentation_task(dims),
            "detection": lambda: detection_task(dims)}[task_name]()
    task.device = device
    task.configure(TrainConfig(task=task_name, data=".", model="x", balance=balance), None)
    shape = [32] * dims if dims == 2 else [16] * dims
    if task_name == "classification":
        label = torch.tensor([[1, 0, 1], [0, 1, 0]]) if multilabel else torch.tensor([0, 2])
        return task, {"image": torch.rand(2, 1, *shape), "label": label}
    if task_name == "segmentation":
        return task, {"image": torch.rand(2, 1, *[16] * dims), "label": torch.randint(0, 3, (2, 1, *[16] * dims))}
    boxes = [torch.tensor([[2.0] * dims + [9.0] * dims]), torch.zeros(0, 2 * dims)]
    return task, {"image": torch.rand(2, 1, *shape), "boxes": boxes, "labels": [torch.tensor([1]), torch.zeros(0, dtype=torch.long)]}


@pytest.mark.parametrize("task_name,name,dims", [c for c in CASES if c[0] != "detection"])
def test_models_and_losses_run_on_the_meta_device(task_name, name, dims):
    task, batch = task_and_batch(task_name, dims)
    model = task.build_model(name).to(META)
    model.train()
    out = task.training_step(model, batch)  # moves the batch to task.device itself, as in training
    assert out["loss"].device == META
    out["loss"].backward()


@pytest.mark.parametrize("balance,multilabel", BALANCES)
def test_classification_losses_keep_their_weights_on_the_device(balance, multilabel):
    task, batch = task_and_batch("classification", 2, balance, multilabel)
    logits = torch.zeros(2, 3, device=META, requires_grad=True)
    loss = task.loss(logits, batch["label"].to(META))
    assert loss.device == META
    if balance == "weights":
        assert task.loss.weight.device == META


def test_a_class_weight_buffer_left_on_the_cpu_is_caught():
    """The check fails on the bug it guards against: a loss built on the CPU and never moved."""
    from medsight.losses.classification import ClassificationLoss

    loss = ClassificationLoss("ce", [0.5, 1.0, 1.5])
    with pytest.raises(RuntimeError, match="device"):
        loss(torch.zeros(2, 3, device=META), torch.tensor([0, 2], device=META))


@pytest.mark.parametrize("task_name,name,dims", [c for c in CASES if c[0] == "detection"])
def test_detection_models_create_no_tensor_without_a_device(task_name, name, dims, one_thread):
    torch.manual_seed(0)
    task, batch = task_and_batch(task_name, dims, device=torch.device("cpu"))
    model = task.build_model(name)
    with torch.device(META):  # a tensor made without naming its device lands here, beside the CPU ones
        model.train()
        out = task.training_step(model, batch)
        out["loss"].backward()
        model.eval()
        with torch.no_grad():
            model(batch["image"][:1])
    assert out["loss"].device.type == "cpu"


def test_a_tensor_made_without_a_device_is_caught():
    class Careless(nn.Module):
        def forward(self, x):
            return x + torch.ones(x.shape[1:])  # on the default device, not x's

    with torch.device(META), pytest.raises(RuntimeError, match="device"):
        Careless()(torch.zeros(2, 3, device="cpu"))


def test_device_rule():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == (torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu"))
    with pytest.raises(MedsightError, match="--device must be"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(MedsightError, match="no CUDA GPU"):
            resolve_device("cuda:0")


def test_the_cpu_always_trains_in_fp32():
    cpu = torch.device("cpu")
    for spec in ("auto", "bf16", "fp16", "off"):
        assert amp_dtype(spec, cpu) is None
        precision = Precision(spec, cpu)
        assert precision.scaler is None and precision.name == "fp32"
        with precision.autocast():
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(MedsightError, match="--amp"):
        amp_dtype("fp8", cpu)
