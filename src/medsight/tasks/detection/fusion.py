"""The boxes of several detectors (folds, seeds) on one image fused into one set, 2D or 3D.

Weighted box fusion (Solovyev, Wang and Gabruseva, "Weighted boxes fusion", Image and Vision Computing 2021):
per class, boxes are taken in falling score order and joined to the fused box they overlap most (IoU above
FUSION_IOU), else they start a new one; a fused box's corners are the score-weighted mean of its members'
corners and its score the members' mean score times min(members, M) / M for M detectors, so a box that only
one of them found keeps 1/M of its score. Where NMS keeps one member's box and drops the others, fusion averages what the
members agree on, which is what an ensemble is for; the paper reports it ahead of NMS and soft-NMS for
ensembles of detectors. Boxes are corner coordinates (mins then maxes), as everywhere in medsight.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medsight.metrics.detection import box_iou

FUSION_IOU = 0.55  # the paper's default


def fuse_detections(members: Sequence[dict[str, np.ndarray]], iou: float = FUSION_IOU) -> dict[str, np.ndarray]:
    """{"boxes", "scores", "labels"} of each detector on one image -> the fused set, by falling score."""
    count = len(members)
    width = next((np.shape(m["boxes"])[-1] for m in members if np.ndim(m["boxes"]) == 2), 4)  # 2 x dimensions
    boxes = np.concatenate([np.asarray(m["boxes"], np.float64).reshape(-1, width) for m in members] or [np.zeros((0, width))])
    scores = np.concatenate([np.asarray(m["scores"], np.float64) for m in members] or [np.zeros(0)])
    labels = np.concatenate([np.asarray(m["labels"], np.int64) for m in members] or [np.zeros(0, np.int64)])
    out_boxes, out_scores, out_labels = [], [], []
    for label in np.unique(labels):
        mine = np.flatnonzero(labels == label)
        mine = mine[np.argsort(-scores[mine], kind="mergesort")]
        fused: list[np.ndarray] = []  # the fused box of each cluster
        weighted: list[np.ndarray] = []  # sum of score x corners
        totals: list[float] = []  # sum of scores
        sizes: list[int] = []  # boxes joined
        for i in mine:
            if fused:
                overlap = box_iou(boxes[i][None], np.asarray(fused))[0]
                best = int(np.argmax(overlap))
                if overlap[best] > iou:
                    weighted[best] = weighted[best] + scores[i] * boxes[i]
                    totals[best] += scores[i]
                    sizes[best] += 1
                    fused[best] = weighted[best] / max(totals[best], 1e-12)
                    continue
            fused.append(boxes[i].copy())
            weighted.append(scores[i] * boxes[i])
            totals.append(float(scores[i]))
            sizes.append(1)
        out_boxes += fused
        out_scores += [t / n * min(n, count) / count for t, n in zip(totals, sizes)]
        out_labels += [int(label)] * len(fused)
    order = np.argsort(-np.asarray(out_scores), kind="mergesort")
    return {"boxes": np.asarray(out_boxes, np.float32).reshape(-1, width)[order],
            "scores": np.asarray(out_scores, np.float32)[order],
            "labels": np.asarray(out_labels, np.int64)[order]}
