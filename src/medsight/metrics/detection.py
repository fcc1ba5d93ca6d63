"""Detection metrics: COCO mAP@[.5:.95], mAP@0.5, mAP@0.75 and mAR@100, the VOC all-point mAP@0.5 beside
them, AP per class, and FROC / CPM by the LUNA16 rule (``medsight.metrics.froc``).

Boxes are corner boxes (2D or 3D, any consistent axis order; 3D boxes use the same rule with IoU of volumes).
Matching follows COCO's evaluateImg: per image and class, detections in descending score order (at most
``max_detections``) each take the unmatched reference box of highest IoU when that IoU >= the threshold
(among equal IoUs the last reference, as pycocotools does). Precision and recall come from all detections of
a class pooled over images. COCO AP samples the precision envelope at the 101 recall points 0, 0.01, ..., 1
(pycocotools' accumulate); the VOC all-point AP is the area under the envelope at every recall step (VOC
2010 and later). mAR@100 is the recall reached with up to 100 detections, averaged over IoU 0.5:0.95. Means
run over the classes that have a reference box (a class without predictions counts as 0; a class without
references is left out, as COCOeval does). Area range "all" only.

Ignored references (``update(gt_ignore=...)``: VOC "difficult", COCO "iscrowd") follow COCOeval: a detection
takes an unmatched scored reference first; failing that, an ignored one at or above the threshold (any
number of detections may take the same ignored box), and is then neither a true nor a false positive.
Ignored boxes do not count in recall. A crowd box overlaps by intersection over the detection's area, as
pycocotools' iou does for iscrowd; a difficult one by IoU, as the VOC devkit does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from medsight.metrics.froc import FROC_RATES, IOU_HIT, froc_from_hits

IOU_THRESHOLDS = np.round(np.arange(0.5, 0.951, 0.05), 2)
RECALL_POINTS = np.linspace(0, 1, 101)
# kinds of reference box in gt_ignore: scored, ignored and matched by IoU, ignored and matched by intersection
# over the detection's area (a crowd box covers many objects: a detection inside it is "in" it)
SCORED, DIFFICULT, CROWD = 0, 1, 2


def box_iou(a: np.ndarray, b: np.ndarray, crowd: np.ndarray | None = None) -> np.ndarray:
    """(N, 2D) x (M, 2D) corner boxes -> (N, M) IoU; where ``crowd`` (M,) is set, intersection over a's area."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    dims = a.shape[1] // 2
    low = np.maximum(a[:, None, :dims], b[None, :, :dims])
    high = np.minimum(a[:, None, dims:], b[None, :, dims:])
    inter = np.clip(high - low, 0, None).prod(-1)
    vol_a = (a[:, dims:] - a[:, :dims]).prod(-1)
    vol_b = (b[:, dims:] - b[:, :dims]).prod(-1)
    union = vol_a[:, None] + vol_b[None, :] - inter
    if crowd is not None:
        union = np.where(np.asarray(crowd, bool)[None, :], vol_a[:, None], union)
    return inter / np.maximum(union, 1e-12)


def as_boxes(boxes: Any, count: int) -> np.ndarray:
    """An (N, 2D) float array, also for no boxes at all."""
    array = np.asarray(boxes, dtype=float)
    return array.reshape(count, -1) if count else np.zeros((0, array.shape[-1] if array.ndim == 2 else 4))


def match_image(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """(T, N) bool: detection n (in descending score order) is a true positive at threshold t (COCO greedy)."""
    return match_ignoring(det_boxes, det_scores, gt_boxes, thresholds)[0]


def match_ignoring(det_boxes: np.ndarray, det_scores: np.ndarray, gt_boxes: np.ndarray, thresholds: Sequence[float],
                   gt_kinds: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) true-positive flags and (T, N) ignored flags, detections in descending score order.

    ``gt_kinds`` (G,) holds SCORED, DIFFICULT or CROWD per reference (all SCORED when None). All thresholds
    are matched at once: one pass over the detections, each a (T, G) array operation.
    """
    order = np.argsort(-det_scores, kind="mergesort")
    kinds = np.zeros(len(gt_boxes), int) if gt_kinds is None else np.asarray(gt_kinds, int)
    ious = box_iou(det_boxes[order], gt_boxes, kinds == CROWD)
    limits = np.minimum(np.asarray(thresholds, float), 1 - 1e-10)[:, None]
    hits = np.zeros((len(limits), len(order)), dtype=bool)
    ignored = np.zeros_like(hits)
    if len(gt_boxes) == 0:
        return hits, ignored
    scored = kinds == SCORED
    taken = np.zeros((len(limits), len(gt_boxes)), dtype=bool)  # an ignored box is never taken
    rows = np.arange(len(limits))
    for d in range(len(order)):
        reach = ious[d][None, :] >= limits

        def best(allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            masked = np.where(allowed, ious[d][None, :], -1.0)
            pick = len(gt_boxes) - 1 - np.argmax(masked[:, ::-1], axis=1)  # the last of equal IoUs, as COCOeval
            return pick, allowed[rows, pick]

        pick, ok = best(reach & ~taken & scored[None, :])
        hits[ok, d] = True
        taken[rows[ok], pick[ok]] = True
        # COCOeval sorts ignored references last and stops at them once a scored one matched
        ignored[:, d] = ~ok & best(reach & ~scored[None, :])[1]
    return hits, ignored


def precision_recall(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection, pooled over images, in descending score order."""
    order = np.argsort(-scores, kind="mergesort")
    tp = tp[order].astype(float)
    tp_sum, fp_sum = np.cumsum(tp), np.cumsum(1 - tp)
    return tp_sum / max(num_gt, 1), tp_sum / (tp_sum + fp_sum + np.spacing(1))


def ap_coco101(recall: np.ndarray, precision: np.ndarray) -> float:
    """Mean of the precision envelope at recall 0, 0.01, ..., 1 (0 where that recall is never reached)."""
    if len(precision) == 0:
        return 0.0
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    index = np.searchsorted(recall, RECALL_POINTS, side="left")
    sampled = np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0)
    return float(np.mean(sampled))


def ap_all_point(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope at every recall step (VOC 2010+)."""
    envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * envelope).sum())


def average_precision(tp: np.ndarray, scores: np.ndarray, num_gt: int, interpolation: str = "all") -> tuple[float, np.ndarray, np.ndarray]:
    """AP, recall and precision from pooled true-positive flags and scores (one class, one threshold);
    ``interpolation`` is "all" (VOC all-point) or "coco101"."""
    if num_gt == 0:
        return float("nan"), np.zeros(0), np.zeros(0)
    recall, precision = precision_recall(tp, scores, num_gt)
    ap = ap_coco101(recall, precision) if interpolation == "coco101" else ap_all_point(recall, precision)
    return ap, recall, precision


def box_centres_mm(boxes: np.ndarray, spacing: Sequence[float] | None) -> tuple[np.ndarray, np.ndarray]:
    """Centres and mean extents of corner boxes, in mm along the array axes (voxel units without spacing).

    Origin and direction move and rotate every centre alike, so distances (all the LUNA16 rule uses) in this
    frame equal those in world coordinates.
    """
    dims = boxes.shape[1] // 2 if boxes.ndim == 2 and boxes.shape[1] else 0
    scale = np.ones(dims) if spacing is None else np.asarray(spacing, float)[:dims]
    centres = (boxes[:, :dims] + boxes[:, dims:]) / 2 * scale
    diameters = ((boxes[:, dims:] - boxes[:, :dims]) * scale).mean(axis=1) if dims else np.zeros(len(boxes))
    return centres, diameters


@dataclass
class DetectionMetric:
    """Accumulate predictions and references per image, then compute COCO mAP/mAR, VOC mAP and FROC/CPM.

    FROC is class-aware (a candidate hits only references of its class) and counts false positives per
    image over all classes; ``froc`` / ``cpm`` follow the LUNA16 rule on box centres (``froc_luna16``; give
    ``spacing`` to ``update`` for millimetres), ``froc_iou`` / ``cpm_iou`` count a hit at IoU >= 0.1.
    """

    num_classes: int
    class_names: list[str] | None = None
    max_detections: int = 100
    froc_iou: float = IOU_HIT
    _images: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self._images = []

    def update(self, pred_boxes: np.ndarray, pred_scores: np.ndarray, pred_labels: np.ndarray,
               gt_boxes: np.ndarray, gt_labels: np.ndarray, spacing: Sequence[float] | None = None,
               gt_ignore: np.ndarray | None = None) -> None:
        """Add one image (or scan): predictions and references, labels 0-based, spacing in array-axis order,
        ``gt_ignore`` the kind of each reference (SCORED, DIFFICULT, CROWD; a true value counts as DIFFICULT)."""
        kinds = np.zeros(len(gt_labels), int) if gt_ignore is None or len(gt_ignore) == 0 else np.asarray(gt_ignore, int)
        if len(kinds) != len(gt_labels):
            raise ValueError(f"gt_ignore has {len(kinds)} values for {len(gt_labels)} reference boxes")
        self._images.append({
            "pb": as_boxes(pred_boxes, len(pred_scores)), "ps": np.asarray(pred_scores, float),
            "pl": np.asarray(pred_labels, int), "gb": as_boxes(gt_boxes, len(gt_labels)),
            "gl": np.asarray(gt_labels, int), "gk": kinds,
            "spacing": None if spacing is None else [float(v) for v in spacing],
        })

    def _detections(self, image: dict[str, Any], c: int, capped: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and scores of class c in one image, best first, at most max_detections when capped (COCO)."""
        det = np.where(image["pl"] == c)[0]
        det = det[np.argsort(-image["ps"][det], kind="mergesort")][: self.max_detections if capped else None]
        return image["pb"][det], image["ps"][det]

    def class_matches(self, c: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int], int]:
        """Class c pooled over images: (T, N) TP and ignored flags, scores (each image's best first), each
        image's number of detections, and the number of scored references."""
        flags, ignored, scores, counts, num_gt = [], [], [], [], 0
        for image in self._images:
            boxes, s = self._detections(image, c)
            own = image["gl"] == c
            hits, skip = match_ignoring(boxes, s, image["gb"][own], IOU_THRESHOLDS, image["gk"][own])
            num_gt += int((image["gk"][own] == SCORED).sum())
            flags.append(hits)
            ignored.append(skip)
            scores.append(s)
            counts.append(len(s))
        empty = np.zeros((len(IOU_THRESHOLDS), 0), bool)
        tp = np.concatenate(flags, axis=1) if flags else empty
        skip_all = np.concatenate(ignored, axis=1) if ignored else empty
        return tp, skip_all, (np.concatenate(scores) if scores else np.zeros(0)), counts, num_gt

    def _per_class(self, c: int) -> dict[str, Any]:
        tp, skip, scores_all, _, num_gt = self.class_matches(c)
        if num_gt == 0:
            nan = np.full(len(IOU_THRESHOLDS), np.nan)
            return {"aps": nan, "recalls": nan, "voc_50": float("nan"), "num_gt": 0, "pr_curve": None}
        aps, recalls, voc_50, curve = [], [], float("nan"), None
        for t in range(len(IOU_THRESHOLDS)):
            kept = ~skip[t]  # a detection on an ignored box is neither a true nor a false positive
            recall, precision = precision_recall(tp[t][kept], scores_all[kept], num_gt)
            aps.append(ap_coco101(recall, precision))
            recalls.append(float(recall[-1]) if len(recall) else 0.0)
            if t == 0:
                voc_50, curve = ap_all_point(recall, precision), (recall, precision)
        return {"aps": np.array(aps), "recalls": np.array(recalls), "voc_50": voc_50, "num_gt": num_gt, "pr_curve": curve}

    def _froc(self, rule: str) -> dict[str, Any]:
        """FROC over all images, a hit needing the same class (rule "luna16": centre in sphere; "iou")."""
        hits, scores = [], []
        for image in self._images:
            for c in range(self.num_classes):
                boxes, s = self._detections(image, c, capped=False)  # FROC has no cap: every candidate counts
                own = image["gl"] == c
                gt, kinds = image["gb"][own], image["gk"][own]
                if len(boxes) == 0 or len(gt) == 0:
                    hit = np.zeros((len(boxes), len(gt)), dtype=bool)
                elif rule == "iou":
                    hit = box_iou(boxes, gt, kinds == CROWD) >= self.froc_iou
                else:
                    centres, _ = box_centres_mm(boxes, image["spacing"])
                    lesions, diameters = box_centres_mm(gt, image["spacing"])
                    squared = ((centres[:, None, :] - lesions[None, :, :]) ** 2).sum(-1)
                    hit = squared < (diameters[None, :] / 2) ** 2
                # LUNA16's "irrelevant findings": a candidate on an ignored box only is left out altogether
                scored = kinds == SCORED
                kept = hit[:, scored].any(axis=1) | ~hit[:, ~scored].any(axis=1)
                hit, s = hit[kept][:, scored], s[kept]
                hits.append(hit)
                scores.append(s)
        return froc_from_hits(hits, scores, len(self._images), FROC_RATES)

    def compute(self) -> dict[str, Any]:
        """{"metrics": {...}, "per_class": {...}, "curves": {...}} (NaN where a class has no reference box)."""
        names = self.class_names or [str(c) for c in range(self.num_classes)]
        per_class, curves, results = {}, {"pr": {}, "froc": {}}, []
        for c in range(self.num_classes):
            r = self._per_class(c)
            results.append(r)
            per_class[names[c]] = {"ap_50": float(r["aps"][0]), "ap_75": float(r["aps"][5]),
                                   "ap_50_95": float(np.mean(r["aps"])), "ar_100": float(np.mean(r["recalls"])),
                                   "ap50_voc_allpoint": r["voc_50"], "num_boxes": r["num_gt"]}
            if r["pr_curve"] is not None and len(r["pr_curve"][0]):
                curves["pr"][names[c]] = {"recall": r["pr_curve"][0].tolist(), "precision": r["pr_curve"][1].tolist()}
        present = [r for r in results if r["num_gt"] > 0]
        luna, by_iou = self._froc("luna16"), self._froc("iou")
        curves["froc"] = {"fp_per_image": luna["curve"]["fp_per_scan"], "sensitivity": luna["curve"]["sensitivity"]}

        def mean(values: list[float]) -> float:
            return float(np.mean(values)) if values else float("nan")

        metrics = {
            "map_50_95": mean([float(np.mean(r["aps"])) for r in present]),
            "map_50": mean([float(r["aps"][0]) for r in present]),
            "map_75": mean([float(r["aps"][5]) for r in present]),
            "mar_100": mean([float(np.mean(r["recalls"])) for r in present]),
            "map50_voc_allpoint": mean([r["voc_50"] for r in present]),
            "froc": luna["sensitivity"], "cpm": luna["cpm"],
            "froc_iou": by_iou["sensitivity"], "cpm_iou": by_iou["cpm"],
        }
        return {"metrics": metrics, "per_class": per_class, "curves": curves}
