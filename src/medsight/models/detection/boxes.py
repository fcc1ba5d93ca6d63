"""Greedy non-maximum suppression with the IoU matrix computed once (MONAI's NMS recomputes it per kept box)."""

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


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the kept boxes, highest score first; with labels, boxes only suppress their own class."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    boxes = boxes[order].float()
    if labels is not None:
        # shift each class far apart so that boxes of different classes never overlap
        offset = (boxes.max() + 1) * labels[order].to(boxes)[:, None]
        boxes = boxes + offset
    overlap = (pairwise_iou(boxes, boxes) > threshold).cpu().numpy()
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep = []
    for i in range(len(boxes)):
        if not suppressed[i]:
            keep.append(i)
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
