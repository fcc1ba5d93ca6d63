"""The split every detector offers: a dense tensor part (exportable) and the box decoding that follows it.

``detector.dense_outputs(images)`` returns a flat tuple of tensors (the part ONNX runs); ``detector.postprocess(
head_outputs, image_sizes)`` turns such a tuple into ``{"boxes", "labels", "scores"}`` per image. The eval
forward is exactly the two in a row, so the torch and onnxruntime engines share every step of decoding.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

# the outputs of a detector exported together with its postprocess (one image per call), in this order
DETECTION_OUTPUTS = ("boxes", "scores", "labels")


class DenseHead(nn.Module):
    """A detector's dense part as a module: images -> the tuple of tensors its ``postprocess`` takes."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.detector.dense_outputs(images)


def detector_of(model: Any) -> Any:
    """The detector behind a model: itself, or the last module of an (input adapter, detector) sequence."""
    return model[-1] if isinstance(model, nn.Sequential) else model


def input_shape_of(first_map: torch.Tensor, stride: int) -> list[int]:
    """The network input's spatial shape from its finest map (inputs are padded to multiples of the strides)."""
    return [int(s) * int(stride) for s in first_map.shape[2:]]


def anchor_images(first_map: torch.Tensor, input_shape: Sequence[int]) -> torch.Tensor:
    """An empty stand-in for the input images: MONAI's anchor generator reads only their batch and shape."""
    return first_map.new_empty((first_map.shape[0], 0, *input_shape))
