"""Detection metrics: COCO-style mAP@0.5, mAP@[.5:.95], mAR@100, AP per class, and LUNA16-style FROC / CPM.

Boxes are corner boxes (2D or 3D, any consistent axis order). Matching follows COCO's evaluateImg: per image
and class, detections in descending score order (at most ``max_detections``) take the unmatched ground-truth
box of highest IoU when that IoU >= the threshold. AP is the area under the precision envelope at every
recall step ("all-point", as VOC 2010+); ``interpolation="coco101"`` samples it at 101 recall points
instead, exactly as pycocotools does. FROC counts a detection as a hit when its IoU with a true box of its
class is >= ``froc_iou`` (0.1 as in MONAI's LUNA16 evaluation); further hits on a found box are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, 2D) x (M, 2D) corner boxes -> (N, M) IoU."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    dims = a.shape[1] // 2
    low = np.maximum(a[:, None, :dims], b[None, :, :dims])
    high = np.minimum(a[:, None, dims:], b[None, :, dims:])
    inter = np.clip(high - low, 0, None).prod(-1)
    vol_a = (a[:, dims:] - a[:, :dims]).prod(-1)
    vol_b = (b[:, dims:] - b[:, :dims]).prod(-1)
    return inter / np.maximum(vol_a[:, None] + vol_b[None, :] - inter, 1e-12)


def as_boxes(boxes: Any, count: int) -> np.ndarray:
    """An (N, 2D) float array, also for no boxes at all."""
    array = np.asarray(boxes, dtype=float)
    return array.reshape(count, -1) if count else np.zeros((0, array.shape[-1] if array.ndim == 2 else 4))


def match_image(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """(T, N) bool: detection n (in descending score order) is a true positive at threshold t (COCO greedy)."""
    order = np.argsort(-det_scores, kind="mergesort")
    ious = box_iou(det_boxes[order], gt_boxes)
    hits = np.zeros((len(thresholds), len(order)), dtype=bool)
    for t, threshold in enumerate(thresholds):
        taken = np.zeros(len(gt_boxes), dtype=bool)
        for d in range(len(order)):
            candidates = np.where(~taken & (ious[d] >= min(threshold, 1 - 1e-10)))[0]
            if len(candidates):
                best = candidates[np.argmax(ious[d, candidates])]
                taken[best] = True
                hits[t, d] = True
    return hits


def average_precision(tp: np.ndarray, scores: np.ndarray, num_gt: int, interpolation: str = "all") -> tuple[float, np.ndarray, np.ndarray]:
    """AP, recall and precision from pooled true-positive flags and scores (one class, one threshold)."""
    if num_gt == 0:
        return float("nan"), np.zeros(0), np.zeros(0)
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(float)
    tp_sum, fp_sum = np.cumsum(tp), np.cumsum(1 - tp)
    recall = tp_sum / num_gt
    precision = tp_sum / np.maximum(tp_sum + fp_sum, np.finfo(float).eps)
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    if interpolation == "coco101":
        points = np.linspace(0, 1, 101)
        index = np.searchsorted(recall, points, side="left")
        sampled = np.array([envelope[i] if i < len(envelope) else 0.0 for i in index])
        return float(sampled.mean()), recall, precision
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum()), recall, precision


def froc(hit: np.ndarray, scores: np.ndarray, num_gt: int, num_images: int,
         rates: Sequence[float] = FROC_RATES) -> tuple[list[float], np.ndarray, np.ndarray]:
    """Sensitivity at each false-positive rate per image, and the whole curve (FP per image, sensitivity)."""
    order = np.argsort(-scores, kind="mergesort")
    hit = hit[order]
    tp_sum, fp_sum = np.cumsum(hit == 1), np.cumsum(hit == 0)
    sens = tp_sum / max(num_gt, 1)
    fp_rate = fp_sum / max(num_images, 1)
    out = []
    for rate in rates:
        allowed = np.where(fp_rate <= rate)[0]
        out.append(float(sens[allowed[-1]]) if len(allowed) else 0.0)
    return out, fp_rate, sens


@dataclass
class DetectionMetric:
    """Accumulate predictions and ground truth per image, then compute COCO mAP/mAR and FROC/CPM."""

    num_classes: int
    class_names: list[str] | None = None
    max_detections: int = 100
    interpolation: str = "all"
    froc_iou: float = 0.1
    _images: list[dict[str, np.ndarray]] = field(default_factory=list)

    def reset(self) -> None:
        self._images = []

    def update(self, pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_labels: np.ndarray,
               gt_boxes: np.ndarray, gt_labels: np.ndarray) -> None:
        """Add one image (or scan): predictions and ground truth, labels 0-based."""
        self._images.append({
            "pb": as_boxes(pred_boxes, len(pred_scores)), "ps": np.asarray(pred_scores, float),
            "pl": np.asarray(pred_labels, int), "gb": as_boxes(gt_boxes, len(gt_labels)),
            "gl": np.asarray(gt_labels, int),
        })

    def _per_class(self, c: int) -> dict[str, Any]:
        flags, scores, froc_hits, num_gt = [], [], [], 0
        for image in self._images:
            det = np.where(image["pl"] == c)[0]
            det = det[np.argsort(-image["ps"][det], kind="mergesort")][: self.max_detections]
            gt = image["gb"][image["gl"] == c]
            num_gt += len(gt)
            boxes, s = image["pb"][det], image["ps"][det]
            order = np.argsort(-s, kind="mergesort")
            flags.append(match_image(boxes, s, gt, IOU_THRESHOLDS))
            scores.append(s[order])
            froc_hits.append(self._froc_hits(boxes[order], gt))
        tp = np.concatenate(flags, axis=1) if flags else np.zeros((len(IOU_THRESHOLDS), 0), bool)
        scores_all = np.concatenate(scores) if scores else np.zeros(0)
        aps, recalls, curve = [], [], None
        for t in range(len(IOU_THRESHOLDS)):
            ap, recall, precision = average_precision(tp[t], scores_all, num_gt, self.interpolation)
            aps.append(ap)
            recalls.append(float(recall[-1]) if len(recall) else (0.0 if num_gt else float("nan")))
            if t == 0:
                curve = (recall, precision)
        return {"aps": np.array(aps), "recalls": np.array(recalls), "num_gt": num_gt, "pr_curve": curve,
                "froc_hits": np.concatenate(froc_hits) if froc_hits else np.zeros(0, int), "scores": scores_all}

    def _froc_hits(self, boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
        """1 = first hit on a true box, 0 = false positive, -1 = another hit on a found box (ignored)."""
        out = np.zeros(len(boxes), dtype=int)
        if len(gt) == 0:
            return out
        ious = box_iou(boxes, gt) >= self.froc_iou
        found = np.zeros(len(gt), dtype=bool)
        for d in range(len(boxes)):
            targets = np.where(ious[d])[0]
            if len(targets) == 0:
                continue
            fresh = targets[~found[targets]]
            if len(fresh):
                found[fresh[0]] = True
                out[d] = 1
            else:
                out[d] = -1
        return out

    def compute(self) -> dict[str, Any]:
        """{"metrics": {...}, "per_class": {...}, "curves": {...}} (NaN where a class has no true box)."""
        names = self.class_names or [str(c) for c in range(self.num_classes)]
        per_class, curves, results = {}, {"pr": {}, "froc": {}}, []
        for c in range(self.num_classes):
            r = self._per_class(c)
            results.append(r)
            per_class[names[c]] = {"ap_50": float(r["aps"][0]), "ap_50_95": float(np.mean(r["aps"])),
                                   "ar_100": float(np.mean(r["recalls"])), "num_boxes": r["num_gt"]}
            if r["pr_curve"] is not None and len(r["pr_curve"][0]):
                curves["pr"][names[c]] = {"recall": r["pr_curve"][0].tolist(), "precision": r["pr_curve"][1].tolist()}
        present = [r for r in results if r["num_gt"] > 0]
        hits = np.concatenate([r["froc_hits"] for r in results]) if results else np.zeros(0, int)
        scores = np.concatenate([r["scores"] for r in results]) if results else np.zeros(0)
        total_gt = sum(r["num_gt"] for r in results)
        sens, fp_rate, sensitivity = froc(hits, scores, total_gt, len(self._images))
        curves["froc"] = {"fp_per_image": fp_rate.tolist(), "sensitivity": sensitivity.tolist()}

        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        metrics = {
            "map_50": mean([float(r["aps"][0]) for r in present]),
            "map_50_95": mean([float(np.mean(r["aps"])) for r in present]),
            "mar_100": mean([float(np.mean(r["recalls"])) for r in present]),
            "froc": dict(zip([f"{r:g}" for r in FROC_RATES], sens)),
            "cpm": float(np.mean(sens)) if total_gt else float("nan"),
        }
        return {"metrics": metrics, "per_class": per_class, "curves": curves}
