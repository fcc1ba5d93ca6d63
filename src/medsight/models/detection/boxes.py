"""Greedy non-maximum suppression with the IoU computed a block of boxes at a time (MONAI's NMS recomputes it per kept box)."""

from __future__ import annotations

import numpy as np
import torch
from monai.apps.detection.utils.box_selector import BoxSelector
from monai.data.box_utils import clip_boxes_to_image


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 2D) x (M, 2D) corner boxes -> (N, M) IoU in float32, without MONAI's per-call validity checks."""
    dims = a.shape[1] // 2
    low = torch.maximum(a[:, None, :dims], b[None, :, :dims])
    high = torch.minimum(a[:, None, dims:], b[None, :, dims:])
    inter = (high - low).clamp(min=0).prod(-1)
    vol_a = (a[:, dims:] - a[:, :dims]).prod(-1)
    vol_b = (b[:, dims:] - b[:, :dims]).prod(-1)
    return inter / (vol_a[:, None] + vol_b[None, :] - inter).clamp(min=1e-6)


NMS_BLOCK = 512  # boxes compared at a time: memory is a block against the kept boxes, never all against all


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, labels: torch.Tensor | None = None,
        limit: int | None = None) -> torch.Tensor:
    """Indices of the kept boxes, highest score first; with labels, boxes only suppress their own class.

    Greedy NMS: a box is kept unless it overlaps a kept box of higher score. The boxes are taken a block at a
    time, each block compared with the boxes kept so far and with itself, so merging the windows of a whole CT
    scan (hundreds of thousands of boxes) needs no N x N matrix; ``limit`` stops once that many are kept.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    boxes = boxes[order].float()
    if labels is not None:
        # shift each class far apart so that boxes of different classes never overlap
        offset = (boxes.max() + 1) * labels[order].to(boxes)[:, None]
        boxes = boxes + offset
    keep: list[int] = []
    most = len(boxes) if limit is None else int(limit)
    for start in range(0, len(boxes), NMS_BLOCK):
        block = boxes[start:start + NMS_BLOCK]
        suppressed = np.zeros(len(block), dtype=bool)
        if keep:
            suppressed |= (pairwise_iou(block, boxes[keep]) > threshold).any(1).cpu().numpy()
        overlap = (pairwise_iou(block, block) > threshold).cpu().numpy()
        for i in range(len(block)):
            if not suppressed[i]:
                keep.append(start + i)
                if len(keep) >= most:
                    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]
                suppressed |= overlap[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=order.device)]


class FastBoxSelector(BoxSelector):
    """MONAI's BoxSelector (per-level top-k, clipping, class-wise NMS) with the matrix NMS above."""

    def select_boxes_per_image(self, boxes_list, logits_list, spatial_size):
        boxes, scores, labels = [], [], []
        for boxes_per_level, logits_per_level in zip(boxes_list, logits_list):
            top, level_scores, level_labels = self.select_top_score_idx_per_level(logits_per_level)
            level_boxes, keep = clip_boxes_to_image(boxes_per_level[top], spatial_size, remove_empty=True)
            boxes.append(level_boxes)
            scores.append(level_scores[keep])
            labels.append(level_labels[keep])
        all_boxes, all_scores, all_labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        keep = nms(all_boxes, all_scores, self.nms_thresh, all_labels)[: self.detections_per_img]
        return all_boxes[keep].to(boxes_list[0].dtype), all_scores[keep].to(logits_list[0].dtype), all_labels[keep]
