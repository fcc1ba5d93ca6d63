"""Detection for ONNX: what to export (the whole 2D Faster R-CNN, else the dense part), real network inputs to
check it on, and box agreement."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.data.steps import as_float_tensor
from medsight.errors import MedsightError
from medsight.models.detection.boxes import pairwise_iou
from medsight.models.detection.dense import DenseHead, detector_of
from medsight.models.detection.faster_rcnn import FasterRCNN
from medsight.models.detection.faster_rcnn_graph import FasterRCNNGraph
from medsight.tasks.detection.data import pad_to

BOX_TOLERANCE = 1e-3  # voxels: boxes decoded from either engine's outputs must agree this closely
SCORE_TOLERANCE = 1e-4
WHOLE_DETECTOR = ("the whole detector: backbone, FPN, RPN, proposal top-k and NMS per level, RoI align, box head, "
                  "decoding and NMS per class")


def export_module(model: nn.Module) -> nn.Module:
    """What ONNX runs of a detector: the whole 2D Faster R-CNN (its postprocess included, one image per
    call), else the tensor part (backbone, FPN, heads) whose outputs the PyTorch postprocess decodes."""
    detector = detector_of(model)
    if isinstance(detector, FasterRCNN) and detector.spatial_dims == 2:
        return FasterRCNNGraph(detector).eval()
    if not (callable(getattr(detector, "head", None)) and callable(getattr(detector, "postprocess", None))):
        raise MedsightError(None, f"the detector {type(detector).__name__} does not split into head and postprocess; "
                                  "it cannot be exported to ONNX")
    return DenseHead(detector).eval()


def network_window(shapes: Sequence[Sequence[int]], plan: dict[str, Any]) -> list[int]:
    """The one window that holds every shape as the predictor would feed it: padded to the size divisor,
    at most the patch size (larger images are predicted in patch-sized windows)."""
    divisor = int(plan["size_divisor"])
    largest = np.max(np.asarray(shapes), axis=0)
    return [min(int(np.ceil(s / divisor) * divisor), int(p)) for s, p in zip(largest, plan["patch_size"])]


def export_inputs(task: Any, dataset: Any, indices: np.ndarray) -> torch.Tensor:
    """Prepared cases (the task's own preprocessing) cut or zero-padded to one network window: (N, C, *S)."""
    images = [as_float_tensor(task.prepared(dataset, int(i)).image) for i in indices]  # tensor or memory-mapped array
    window = network_window([im.shape[1:] for im in images], task.plan)
    crops = [pad_to(im[(slice(None), *[slice(0, w) for w in window])], window) for im in images]
    return torch.stack(crops)


def match_boxes(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> tuple[bool, float, float]:
    """Whether two detections of one image are the same boxes (any order), their largest box and score gaps."""
    if len(expected["boxes"]) != len(got["boxes"]):
        return False, float("inf"), float("inf")
    if len(expected["boxes"]) == 0:
        return True, 0.0, 0.0
    gap = (expected["boxes"][:, None].double() - got["boxes"][None].double()).abs().amax(-1)
    gap[expected["labels"][:, None] != got["labels"][None]] = float("inf")  # a box only matches its own class
    nearest = gap.argmin(1)
    box_gap = float(gap.min(1).values.max())
    score_gap = float((expected["scores"].double() - got["scores"][nearest].double()).abs().max())
    one_to_one = len(set(nearest.tolist())) == len(nearest)
    return one_to_one and box_gap <= BOX_TOLERANCE and score_gap <= SCORE_TOLERANCE, box_gap, score_gap


def matched_iou(expected: dict[str, torch.Tensor], got: dict[str, torch.Tensor]) -> float:
    """The lowest IoU between a box and its nearest box of the same class in the other detections (1: none)."""
    if len(expected["boxes"]) == 0 or len(got["boxes"]) == 0:
        return 1.0 if len(expected["boxes"]) == len(got["boxes"]) else 0.0
    iou = pairwise_iou(expected["boxes"].double(), got["boxes"].double())
    iou[expected["labels"][:, None] != got["labels"][None]] = 0.0
    return float(iou.max(1).values.min())


def export_agreement(model: nn.Module, engine: Callable[[torch.Tensor], Any], inputs: torch.Tensor) -> dict[str, Any]:
    """PyTorch's detections against onnxruntime's (an exported whole detector's, or the detector's own
    postprocess on onnxruntime's dense outputs): the same boxes, labels and scores within the tolerances?"""
    detector = detector_of(model)
    sizes = [list(inputs.shape[2:])] * len(inputs)
    whole = getattr(engine, "gives_detections", False)
    with torch.no_grad():
        expected = detector.postprocess(detector.dense_outputs(inputs), sizes)
        got = engine(inputs) if whole else detector.postprocess(engine(inputs), sizes)
    matches = [match_boxes(e, g) for e, g in zip(expected, got)]
    return {"cases": len(inputs), "boxes_torch": sum(len(e["boxes"]) for e in expected),
            "boxes_onnx": sum(len(g["boxes"]) for g in got), "cases_agreeing": sum(m[0] for m in matches),
            "max_box_diff": max(m[1] for m in matches), "max_score_diff": max(m[2] for m in matches),
            "min_matched_iou": min(matched_iou(e, g) for e, g in zip(expected, got)),
            "box_tolerance": BOX_TOLERANCE, "score_tolerance": SCORE_TOLERANCE, "agree": all(m[0] for m in matches),
            "exported_part": WHOLE_DETECTOR if whole else getattr(detector, "exported_part", type(detector).__name__),
            "postprocess": "in the ONNX graph" if whole else detector.postprocess.__doc__.splitlines()[0]}
