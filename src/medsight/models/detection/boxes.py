"""Greedy non-maximum suppression, class by class, on the IoU of each class's boxes only.

Boxes of different classes (or FPN levels) never suppress one another, so each class is one block (one
matrix over all classes would compute the pairs of different classes too, which for the proposals of four FPN
levels is three quarters of the work; MONAI's NMS recomputes IoUs per kept box).
The greedy sweep computes those IoUs a chunk of rows at a time, skips the rows of boxes already suppressed
and stops once as many boxes are kept as are wanted.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.apps.detection.utils.box_selector import BoxSelector
from monai.data.box_utils import clip_boxes_to_image


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, 2D) x (M, 2D) corner boxes -> (N, M) IoU in float32, without MONAI's per-call validity checks."""
    dims = a.shape[1] // 2
    inter = None
    for axis in range(dims):  # one (N, M) plane per axis: no (N, M, D) intermediates
        side = torch.minimum(a[:, None, dims + axis], b[None, :, dims + axis])
        side.sub_(torch.maximum(a[:, None, axis], b[None, :, axis])).clamp_(min=0)
        inter = side if inter is None else inter.mul_(side)
    vol_a = (a[:, dims:] - a[:, :dims]).prod(-1)
    vol_b = (b[:, dims:] - b[:, :dims]).prod(-1)
    union = (vol_a[:, None] + vol_b[None, :]).sub_(inter).clamp_(min=1e-6)
    return inter.div_(union)


def greedy_keep(boxes: torch.Tensor, threshold: float, max_keep: int | None = None, chunk: int = 128) -> np.ndarray:
    """Positions kept by greedy NMS among boxes already sorted by descending score (at most max_keep).

    The IoUs are computed a chunk of rows at a time, only for the rows not yet suppressed and only against
    the boxes from the chunk on (a box is suppressed by higher-scoring boxes only), and not at all past the
    max_keep-th kept box.
    """
    suppressed = np.zeros(len(boxes), dtype=bool)
    keep: list[int] = []
    limit = len(boxes) if max_keep is None else max_keep
    for start in range(0, len(boxes), chunk):
        rows = start + np.flatnonzero(~suppressed[start:start + chunk])
        if len(rows) == 0:
            continue
        index = torch.as_tensor(rows, device=boxes.device)
        overlap = (pairwise_iou(boxes[index], boxes[start:]) > threshold).cpu().numpy()
        later = suppressed[start:]  # a view: suppressing in it suppresses in the whole
        for row, i in zip(overlap, rows):
            if not suppressed[i]:
                keep.append(int(i))
                if len(keep) == limit:
                    return np.asarray(keep, dtype=np.int64)
                later |= row
    return np.asarray(keep, dtype=np.int64)


def nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float, labels: torch.Tensor | None = None,
        max_keep: int | None = None) -> torch.Tensor:
    """Indices of the kept boxes, highest score first (the first max_keep); with labels, boxes only
    suppress boxes of their own label."""
    if boxes.numel() == 0 or max_keep == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = scores.argsort(descending=True)
    ranked = boxes[order].float()
    if labels is None:
        kept = torch.from_numpy(greedy_keep(ranked, threshold, max_keep))
    else:
        ranked_labels = labels[order].cpu()
        # each label's positions in the score order, still in score order (a stable sort by label)
        by_label = ranked_labels.argsort(stable=True)
        counts = torch.unique_consecutive(ranked_labels[by_label], return_counts=True)[1]
        kept_parts = [block[greedy_keep(ranked[block.to(ranked.device)], threshold, max_keep)]
                      for block in by_label.split(counts.tolist())]
        kept = torch.cat(kept_parts).sort().values  # positions in the score order = descending score
    return order[kept[:max_keep].to(order.device)]


class FastBoxSelector(BoxSelector):
    """MONAI's BoxSelector (per-level top-k, clipping, class-wise NMS) with the class-wise NMS above."""

    def select_boxes_per_image(self, boxes_list, logits_list, spatial_size):
        boxes, scores, labels = [], [], []
        for boxes_per_level, logits_per_level in zip(boxes_list, logits_list):
            top, level_scores, level_labels = self.select_top_score_idx_per_level(logits_per_level)
            level_boxes, keep = clip_boxes_to_image(boxes_per_level[top], spatial_size, remove_empty=True)
            boxes.append(level_boxes)
            scores.append(level_scores[keep])
            labels.append(level_labels[keep])
        all_boxes, all_scores, all_labels = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        keep = nms(all_boxes, all_scores, self.nms_thresh, all_labels, self.detections_per_img)
        return all_boxes[keep].to(boxes_list[0].dtype), all_scores[keep].to(logits_list[0].dtype), all_labels[keep]
