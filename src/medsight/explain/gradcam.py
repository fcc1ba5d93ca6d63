"""Grad-CAM and Grad-CAM++ heat maps (MONAI's implementations) on the right layer of each model family."""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

METHODS = ("gradcam", "gradcampp")


def _in_features(model: nn.Module, example: torch.Tensor | None) -> str:
    """For `features` stacks (pools are skipped on small inputs): the last layer there with a map over 1 voxel."""
    if example is None:
        raise ValueError(f"{type(model).__name__} needs an example input to find its Grad-CAM layer")
    return traced_target_layer(model, example, within="features.")


# Model class name -> the layer whose feature map Grad-CAM weighs: the last full-resolution map before pooling.
FAMILY_LAYERS = {
    "ResNet": lambda m, x: "layer4",  # MONAI ResNet (resnet18/34/50)
    "LeNet5": _in_features,
    "AlexNet": _in_features,
    "VGG": _in_features,
    "ConvNeXt": lambda m, x: "stages",
    "EfficientNet": lambda m, x: "_bn1",  # _swish is shared with the stem, so its backward hook would fire twice
    # segmentation (MONAI DynUNet and medsight's subclass): the last decoder stage, at full resolution or
    # nearly; the score is the class's logits summed over the volume (MONAI's class_score)
    "DynUNet": lambda m, x: f"upsamples.{len(m.upsamples) - 1}",
    "DynUNetWeights": lambda m, x: f"upsamples.{len(m.upsamples) - 1}",
}
POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d)


def target_layer(model: nn.Module, example: torch.Tensor | None = None) -> str:
    """The layer to explain: from the family table (also inside wrappers), else found by tracing a forward pass."""
    for prefix, module in model.named_modules():
        rule = FAMILY_LAYERS.get(type(module).__name__)
        if rule is not None:
            if example is not None and module is not model:
                example = _input_of(model, module, example)
            name = rule(module, example)
            return f"{prefix}.{name}" if prefix else name
    if example is None:
        raise ValueError(f"no Grad-CAM layer known for {type(model).__name__} and no example input to trace")
    return traced_target_layer(model, example)


def _input_of(model: nn.Module, inner: nn.Module, example: torch.Tensor) -> torch.Tensor:
    """What a wrapped network receives when the wrapper is called on example."""
    seen: list[torch.Tensor] = []
    handle = inner.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        handle.remove()
    return seen[0]


def traced_target_layer(model: nn.Module, example: torch.Tensor, within: str = "") -> str:
    """The last leaf module (under ``within``), called once, whose output is a spatial map over 1 voxel."""
    calls: dict[str, int] = {}
    order: list[str] = []
    hooks = []

    def hook(name: str):
        def record(_module, _inputs, output):
            calls[name] = calls.get(name, 0) + 1
            if (isinstance(output, torch.Tensor) and output.ndim == example.ndim
                    and int(np.prod(output.shape[2:])) > 1):
                order.append(name)
        return record

    for name, module in model.named_modules():
        if name.startswith(within) and name and not list(module.children()) and not isinstance(module, POOLS):
            hooks.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model.eval()(example)
    finally:
        for handle in hooks:
            handle.remove()
    candidates = [n for n in order if calls[n] == 1]
    if not candidates:
        raise ValueError(f"{type(model).__name__} has no spatial feature map to explain")
    return candidates[-1]


def normalize01(maps: torch.Tensor) -> torch.Tensor:
    """Scale each map to [0, 1] (MONAI's default normaliser flips the scale, so it is not used)."""
    flat = maps.reshape(len(maps), -1)
    low = flat.min(1, keepdim=True).values
    span = (flat.max(1, keepdim=True).values - low).clamp_min(1e-12)
    return ((flat - low) / span).reshape(maps.shape)


class CamExplainer:
    """Grad-CAM and Grad-CAM++ of one network; it works on a private copy, since MONAI's hooks stay attached."""

    def __init__(self, model: nn.Module, example: torch.Tensor):
        from monai.visualize import GradCAM, GradCAMpp
        from monai.visualize.class_activation_maps import ModelWithHooks

        self.model = copy.deepcopy(model).eval()
        for module in self.model.modules():
            if getattr(module, "inplace", False):
                module.inplace = False  # an in-place op after the hooked layer breaks its backward hook
        for parameter in self.model.parameters():
            parameter.requires_grad_(True)
        self.layer = target_layer(self.model, example)
        hooked = ModelWithHooks(self.model, self.layer, register_forward=True, register_backward=True)
        self.cams = {"gradcam": GradCAM(hooked, self.layer, postprocessing=normalize01),
                     "gradcampp": GradCAMpp(hooked, self.layer, postprocessing=normalize01)}
        self.lock = threading.Lock()  # the hooks keep per-call state

    def __call__(self, image: torch.Tensor, class_index: int) -> dict[str, np.ndarray]:
        """Heat maps in [0, 1] over the input's spatial shape for one (C, *spatial) image and one class."""
        device = next(self.model.parameters()).device
        x = image[None].to(device)
        out = {}
        with self.lock, torch.enable_grad():
            for method, cam in self.cams.items():
                heat = cam(x, class_idx=int(class_index))
                out[method] = np.nan_to_num(heat[0, 0].detach().cpu().numpy().astype(np.float32))
        return out


_EXPLAINERS: "weakref.WeakKeyDictionary[nn.Module, CamExplainer]" = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def explainer_for(model: nn.Module, example: torch.Tensor) -> CamExplainer:
    """The cached explainer of a network (building one copies the network once)."""
    with _EXPLAINERS_LOCK:
        if model not in _EXPLAINERS:
            _EXPLAINERS[model] = CamExplainer(model, example)
        return _EXPLAINERS[model]


def explain(models: Sequence[Any], image: torch.Tensor, class_index: int) -> dict[str, np.ndarray]:
    """Grad-CAM and Grad-CAM++ of an ensemble: each member's map in [0, 1], averaged and rescaled to [0, 1].

    ``models`` may hold ONNX engines; their PyTorch twins are explained (ONNX has no gradients).
    """
    networks = [m if isinstance(m, nn.Module) else getattr(m, "torch_module", None) for m in models]
    networks = [n for n in networks if n is not None]
    if not networks:
        raise ValueError("no PyTorch network to explain")
    maps = [explainer_for(n, image[None])(image, class_index) for n in networks]
    averaged = {}
    for method in METHODS:
        mean = torch.from_numpy(np.mean([m[method] for m in maps], axis=0))[None]
        averaged[method] = normalize01(mean)[0].numpy()
    return averaged
