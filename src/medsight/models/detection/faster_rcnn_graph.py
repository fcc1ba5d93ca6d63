"""2D Faster R-CNN inference as one traceable graph, one image per call: what ``medsight export`` writes.

The steps of ``FasterRCNN.postprocess`` written with operations ONNX has, so that onnxruntime runs the whole
call and not only the dense part: anchors from the map shapes, decoding (MONAI's box coder), clipping,
per-level ``TopK``, ``NonMaxSuppression`` per FPN level (proposals) and per class (detections), RoI align as
``GridSample`` + ``AveragePool`` on the level chosen per RoI, and the box head. Called eagerly the module runs
the same code with medsight's NMS, so it is its own PyTorch reference. 3D has no ONNX ``GridSample``: 3D
detectors keep the dense export and the PyTorch postprocess.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from medsight.models.detection.boxes import nms
from medsight.models.detection.dense import DETECTION_OUTPUTS
from medsight.models.detection.faster_rcnn import flatten_maps

SCORE_FLOOR = -1.0e30  # scores at or below it (the -inf of other levels / classes) never enter an NMS


class ClassNMS(torch.autograd.Function):
    """Greedy NMS of each score row on one image: boxes (1, N, 4), scores (1, K, N) -> (M, 3) int64 rows
    (0, row, box), a row's boxes in descending score order; ONNX ``NonMaxSuppression`` when exported."""

    @staticmethod
    def forward(ctx: Any, boxes: torch.Tensor, scores: torch.Tensor, max_per_row: int, iou: float) -> torch.Tensor:
        rows = []
        for row in range(scores.shape[1]):
            valid = torch.where(scores[0, row] > SCORE_FLOOR)[0]
            kept = valid[nms(boxes[0, valid], scores[0, row, valid], iou, max_keep=max_per_row)]
            rows.append(torch.stack([torch.zeros_like(kept), torch.full_like(kept, row), kept], 1))
        return torch.cat(rows)

    @staticmethod
    def symbolic(g: Any, boxes: Any, scores: Any, max_per_row: int, iou: float) -> Any:
        # onnxruntime suppresses a box whose IoU with a kept one is > iou, as medsight's nms does
        return g.op("NonMaxSuppression", boxes, scores,
                    g.op("Constant", value_t=torch.tensor([max_per_row], dtype=torch.int64)),
                    g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float32)),
                    g.op("Constant", value_t=torch.tensor([SCORE_FLOOR], dtype=torch.float32)))


def top_count(x: torch.Tensor, k: int) -> Any:
    """min(k, len(x)) for ``topk``: a Python int eagerly, a traced value (the length is dynamic) in export."""
    if not torch.jit.is_tracing():
        return min(k, x.shape[0])
    length = torch._shape_as_tensor(x)[:1]
    return torch.min(torch.cat([torch.tensor([k], dtype=length.dtype), length]))


def clip_nonempty(boxes: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MONAI's ``clip_boxes_to_image(remove_empty=True)`` with a traced image size: boxes clamped to
    [0, size] per axis, and which of them still span at least one pixel on every axis."""
    limit = torch.cat([size, size])
    boxes = torch.max(torch.min(boxes, limit), torch.zeros_like(limit))
    dims = boxes.shape[1] // 2
    return boxes, (boxes[:, dims:] >= boxes[:, :dims] + 1).all(1)


def best_by_score(boxes: torch.Tensor, scores: torch.Tensor, rows: torch.Tensor, selected: torch.Tensor,
                  count: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ``count`` highest-scoring NMS survivors of all rows together, by descending score."""
    index = selected[:, 2]
    order = scores[index].topk(top_count(index, count)).indices
    index = index[order]
    return boxes[index], scores[index], rows[index]


def one_hot_scores(scores: torch.Tensor, rows: torch.Tensor, count: int) -> torch.Tensor:
    """(1, count, N): each box's score in its own row (level or class), -inf in the others."""
    mine = rows[None] == torch.arange(count, device=rows.device)[:, None]
    return torch.where(mine, scores[None], torch.full_like(scores[None], float("-inf")))[None]


def roi_align_one_image(features: torch.Tensor, boxes: torch.Tensor, output_size: int, spatial_scale: float,
                        sampling_ratio: int = 2) -> torch.Tensor:
    """``roi_align.roi_align`` for a batch of one 2D image, the same operations with traced shapes."""
    shape = torch._shape_as_tensor(features)[2:].to(features.dtype)
    low, high = boxes[:, :2] * spatial_scale, boxes[:, 2:] * spatial_scale
    n = output_size * sampling_ratio
    t = (torch.arange(n, dtype=features.dtype, device=features.device) + 0.5) / n
    axes = [(low[:, d:d + 1] + t[None, :] * (high[:, d:d + 1] - low[:, d:d + 1])) * 2.0 / shape[d] - 1.0 for d in range(2)]
    rows, cols = axes[0][:, :, None].expand(-1, n, n), axes[1][:, None, :].expand(-1, n, n)
    grid = torch.stack([cols, rows], dim=-1).reshape(1, -1, n, 2)  # the RoIs stacked along the first axis
    sampled = F.grid_sample(features, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    pooled = F.avg_pool2d(sampled, kernel_size=sampling_ratio)  # (1, C, K * out, out)
    return pooled.reshape(features.shape[1], -1, output_size, output_size).transpose(0, 1)


class FasterRCNNGraph(nn.Module):
    """images (1, C, H, W) -> boxes (K, 4), scores (K,), labels (K,) 0-based, by descending score."""

    gives_detections = True

    def __init__(self, detector: nn.Module):
        super().__init__()
        if detector.spatial_dims != 2:
            raise ValueError("the Faster R-CNN graph is 2D only")
        self.detector = detector
        extractor = detector.feature_extractor
        self.strides = [int(s) for s in extractor.strides[:detector.num_levels]]
        self.cell_anchors = [a.float() for a in detector.anchor_generator.cell_anchors]

    def onnx_axes(self) -> tuple[list[str], dict[str, dict[int, str]]]:
        """Output names and dynamic axes: one image per call, any padded size, any number of boxes."""
        return list(DETECTION_OUTPUTS), {"image": {2: "dim0", 3: "dim1"}, **{name: {0: "detections"} for name in DETECTION_OUTPUTS}}

    def level_anchors(self, fmap: torch.Tensor, level: int) -> torch.Tensor:
        """MONAI's anchors of one level (centres at stride * i + stride // 2, anchor-minor order)."""
        stride = self.strides[level]
        centres = [torch.arange(0, fmap.shape[2 + axis], device=fmap.device).float() * stride + stride // 2 for axis in range(2)]
        grid = torch.meshgrid(*centres, indexing="ij")
        shifts = torch.stack([g.reshape(-1) for g in grid] * 2, dim=1)
        return (shifts[:, None, :] + self.cell_anchors[level].to(fmap.device)[None]).reshape(-1, 4)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        det = self.detector
        levels = det.num_levels
        outputs = det.dense_outputs(images)
        maps, objectness, deltas = outputs[:levels], outputs[levels:2 * levels], outputs[2 * levels:]
        size = torch._shape_as_tensor(images)[2:].to(images.dtype)
        pre, post = det.pre_nms[1], det.post_nms[1]
        boxes, scores, level_of = [], [], []
        for level in range(levels):  # decode, clip, drop empty boxes, keep the level's top `pre`
            decoded = det.rpn_coder.decode_single(flatten_maps([deltas[level]], 4)[0], self.level_anchors(maps[level], level))
            decoded, keep = clip_nonempty(decoded, size)
            decoded, logits = decoded[keep], flatten_maps([objectness[level]], 1)[0, :, 0][keep]
            top = logits.topk(top_count(logits, pre))
            boxes.append(decoded[top.indices])
            scores.append(top.values)
            level_of.append(torch.full_like(top.indices, level))
        boxes, scores, level_of = torch.cat(boxes), torch.cat(scores), torch.cat(level_of)
        selected = ClassNMS.apply(boxes[None], one_hot_scores(scores, level_of, levels), post, 0.7)
        proposals = best_by_score(boxes, scores, level_of, selected, post)[0]
        proposals, pooled = self.pool(maps, proposals)
        logits, box_deltas = det.box_head(pooled)
        return self.detections(proposals, F.softmax(logits, -1)[:, 1:], box_deltas, size)

    def pool(self, maps, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """RoI align of each proposal on the level whose anchor size is nearest its size (log scale), as
        ``FasterRCNN.pool``; the proposals come back grouped by level, in the order of the pooled RoIs."""
        det = self.detector
        size = (proposals[:, 2:] - proposals[:, :2]).clamp(min=1e-3).prod(1).pow(0.5)
        sizes = torch.tensor(det.level_sizes, device=proposals.device)
        nearest = (size.log()[:, None] - sizes.log()[None]).abs().argmin(1)
        # a level without RoIs would hand pooling an empty axis (an error in PyTorch and onnxruntime alike):
        # every level pools one placeholder RoI more, dropped after
        placeholder = proposals.new_tensor([[0.0, 0.0, 1.0, 1.0]])
        grouped, pooled = [], []
        for level, fmap in enumerate(maps):
            mine = proposals[nearest == level]
            grouped.append(mine)
            padded = torch.cat([mine, placeholder])
            pooled.append(roi_align_one_image(fmap, padded, det.roi_size, 1.0 / self.strides[level], 2)[:-1])
        return torch.cat(grouped), torch.cat(pooled)

    def detections(self, proposals, probs, box_deltas, size):
        """Class-specific decoding, clipping, the score threshold and per-class NMS, as ``FasterRCNN.detect``."""
        det = self.detector
        classes = det.num_classes
        count = proposals.shape[0]
        repeated = proposals[:, None, :].expand(-1, classes, -1).reshape(-1, 4)
        boxes = det.roi_coder.decode_single(box_deltas.reshape(-1, 4), repeated)
        scores = probs.reshape(-1)
        labels = torch.arange(classes, device=probs.device)[None].expand(count, -1).reshape(-1)
        boxes, keep = clip_nonempty(boxes, size)
        keep = keep & (scores > det.score_thresh)
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        selected = ClassNMS.apply(boxes[None], one_hot_scores(scores, labels, classes), det.detections_per_image,
                                  det.nms_thresh)
        return best_by_score(boxes, scores, labels, selected, det.detections_per_image)
