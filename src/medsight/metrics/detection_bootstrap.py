"""Bootstrap 95% intervals of COCO mAP@0.5, mAP@[.5:.95], mAP@0.75, mAR@100 and the VOC all-point mAP@0.5,
resampling images (scans) with replacement.

Matching is per image, so a resample never re-matches: each detection keeps its true-positive flags and only
its weight changes (how often its image was drawn). A resample's precision and recall are then weighted
cumulative sums over the detections in score order, which equals DetectionMetric.compute on the images
concatenated as drawn (the copies of one detection share its score and its flag, so their order among
themselves changes neither the precision envelope nor the recall steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medsight.metrics.detection import RECALL_POINTS, SCORED, DetectionMetric

NAMES = ("map_50", "map_50_95", "map_75", "mar_100", "map50_voc_allpoint")


def class_matches(metric: DetectionMetric, c: int) -> tuple[np.ndarray, ...]:
    """(T, N) TP flags of class c's detections in descending score order, (T, N) ignored flags (on an ignored
    reference: weight 0), each detection's image, and (images,) scored reference counts."""
    tp, skip, scores_all, counts, _ = metric.class_matches(c)
    owner = np.repeat(np.arange(len(counts)), counts).astype(int)
    refs = [int(((image["gl"] == c) & (image["gk"] == SCORED)).sum()) for image in metric._images]
    order = np.argsort(-scores_all, kind="mergesort")  # pooled over images, as precision_recall sorts them
    return tp[:, order], skip[:, order], owner[order], np.asarray(refs, float)


def weighted_scores(tp: np.ndarray, drawn: np.ndarray, num_gt: float, skip: np.ndarray | None = None) -> dict[str, float]:
    """COCO AP per threshold, recall at the end and VOC all-point AP@0.5 for weighted detections (one class)."""
    aps, recalls, voc = [], [], 0.0
    for t in range(tp.shape[0]):
        weights = drawn if skip is None else drawn * ~skip[t]  # a detection on an ignored box counts nowhere
        tp_sum = np.cumsum(weights * tp[t])
        fp_sum = np.cumsum(weights * ~tp[t])
        recall = tp_sum / max(num_gt, 1)
        precision = tp_sum / (tp_sum + fp_sum + np.spacing(1))
        kept = weights > 0  # an image drawn zero times adds no point to the curve
        recall, precision = recall[kept], precision[kept]
        if len(precision) == 0:
            aps.append(0.0)
            recalls.append(0.0)
            continue
        envelope = np.maximum.accumulate(precision[::-1])[::-1]
        index = np.searchsorted(recall, RECALL_POINTS, side="left")
        aps.append(float(np.where(index < len(envelope), envelope[np.minimum(index, len(envelope) - 1)], 0.0).mean()))
        recalls.append(float(recall[-1]))
        if t == 0:
            voc = float((np.diff(np.concatenate([[0.0], recall])) * envelope).sum())
    return {"aps": np.array(aps), "recalls": np.array(recalls), "voc": voc}


def resample_scores(per_class: list[tuple[np.ndarray, ...]], drawn: np.ndarray) -> dict[str, float] | None:
    """NAMES for images drawn `drawn[i]` times (per_class from class_matches); None without any reference."""
    rows = []
    for tp, skip, owner, counts in per_class:
        num_gt = float((drawn * counts).sum())
        if num_gt > 0:  # a class without references in this resample is left out, as COCOeval does
            rows.append(weighted_scores(tp, drawn[owner], num_gt, skip))
    if not rows:
        return None
    return {"map_50": float(np.mean([r["aps"][0] for r in rows])), "map_75": float(np.mean([r["aps"][5] for r in rows])),
            "map_50_95": float(np.mean([r["aps"].mean() for r in rows])),
            "mar_100": float(np.mean([r["recalls"].mean() for r in rows])),
            "map50_voc_allpoint": float(np.mean([r["voc"] for r in rows]))}


def detection_bootstrap_ci(metric: DetectionMetric, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """{name: [low, high]} for NAMES over `n_boot` resamples of the metric's images (None without references)."""
    n_images = len(metric._images)
    per_class = [class_matches(metric, c) for c in range(metric.num_classes)]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {name: [] for name in NAMES}
    for _ in range(n_boot if n_images else 0):
        drawn = np.bincount(rng.integers(0, n_images, n_images), minlength=n_images).astype(float)
        scores = resample_scores(per_class, drawn)
        for name in NAMES if scores else ():
            draws[name].append(scores[name])
    return {name: ([float(v) for v in np.percentile(values, [2.5, 97.5])] if values else None)
            for name, values in draws.items()}
