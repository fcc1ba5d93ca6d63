"""Networks a task can call: a torch module, or an ONNX model on onnxruntime behind the same tensor call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medsight.errors import MedsightError
from medsight.models.detection.dense import DETECTION_OUTPUTS

ENGINES = ("torch", "onnx")


class OnnxEngine:
    """An exported network on onnxruntime that a task calls like a module: tensor in, tensor (or tuple) out.

    ``eval()`` and ``to()`` exist so task code written for torch modules runs unchanged; ``torch_module``
    (optional) is the same network in PyTorch, kept for what ONNX cannot do (gradients for Grad-CAM).
    """

    def __init__(self, path: str | Path, threads: int | None = None, torch_module: nn.Module | None = None,
                 prepare: nn.Module | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise MedsightError(self.path.parent.parent, "has no ONNX model (no export/model.onnx): "
                                                         "run `medsight export RUN --format onnx` first")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: onnxruntime's choice (one per core)
        options.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: on shared cores a spinning pool steals time from the rest
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for broken files
            raise MedsightError(self.path, f"is not a loadable ONNX model ({str(exc).splitlines()[0][:200]})") from None
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        # a detector exported whole (2D Faster R-CNN) gives its detections, one image per call; older exports
        # and other detectors give their dense outputs, which the PyTorch twin's postprocess decodes
        self.gives_detections = self.output_names == list(DETECTION_OUTPUTS)
        # prepare: an input adapter (an ensemble member's own normalisation) run in torch before the session
        self.prepare = prepare
        self.torch_module = torch_module if prepare is None or torch_module is None else nn.Sequential(prepare, torch_module)

    def __call__(self, x: torch.Tensor) -> Any:
        if self.prepare is not None:
            with torch.no_grad():
                x = self.prepare(x)
        if self.gives_detections:
            return [self.detect(image[None]) for image in x]
        feed = {self.input_name: np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)}
        outputs = [torch.from_numpy(o) for o in self.session.run(self.output_names, feed)]
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def detect(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """One image (1, C, *S) through a whole-detector graph: its boxes, scores and 0-based labels."""
        feed = {self.input_name: np.ascontiguousarray(image.detach().cpu().numpy(), dtype=np.float32)}
        return {name: torch.from_numpy(o) for name, o in zip(self.output_names, self.session.run(self.output_names, feed))}

    def eval(self) -> "OnnxEngine":
        return self

    def train(self, mode: bool = True) -> "OnnxEngine":
        if mode:
            raise MedsightError(self.path, "an ONNX model cannot be trained")
        return self

    def to(self, *args: Any, **kwargs: Any) -> "OnnxEngine":
        return self  # the session picked its provider when it was created

    def __repr__(self) -> str:
        return f"OnnxEngine({self.path})"
