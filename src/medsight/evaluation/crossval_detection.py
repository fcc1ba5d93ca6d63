"""Out-of-fold detection metrics: every fold's validation boxes (its eval/val/predictions/results.json) scored
together, COCO mAP@0.5, mAP@[.5:.95], mAP@0.75, mAR@100 and the VOC all-point mAP@0.5 with bootstrap 95%
intervals over images, and FROC / CPM (LUNA16 rule) pooled over all folds' scans."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.jsonio import load_json
from medsight.metrics.detection import DetectionMetric
from medsight.metrics.detection_bootstrap import NAMES, detection_bootstrap_ci
from medsight.tasks.detection.evaluate import category_ids, image_ids


def corners(bbox: Sequence[float]) -> list[float]:
    """COCO [x, y, (z,) w, h, (d)] -> array-order corners (the inverse of tasks.detection.evaluate.coco_box)."""
    dims = len(bbox) // 2
    low, size = np.asarray(bbox[:dims], float)[::-1], np.asarray(bbox[dims:], float)[::-1]
    return [*low, *(low + size)]


def read_results(path: Path, dims: int, dataset: Any = None) -> dict[str, dict[str, np.ndarray]]:
    """results.json -> {case id: {"boxes", "scores", "labels" (0-based)}}; dataset: the data set whose own
    image and category ids (a COCO file's) the records were written in."""
    if not path.is_file():
        raise MedsightError(path, "is missing: the fold's validation predictions were not written")
    case_of, label_of = {}, {}
    if dataset is not None:
        case_of = {str(i): case for i, case in zip(image_ids(dataset), dataset.case_ids)}
        label_of = {c: k for k, c in enumerate(category_ids(dataset.classes, dataset))}
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in load_json(path):
        grouped[case_of.get(str(record["image_id"]), str(record["image_id"]))].append(record)
    return {case: {"boxes": np.array([corners(r["bbox"]) for r in rows], float).reshape(-1, 2 * dims),
                   "scores": np.array([r["score"] for r in rows], float),
                   "labels": np.array([label_of.get(r["category_id"], r["category_id"] - 1) for r in rows], int)}
            for case, rows in grouped.items()}


def pooled_detection(dataset: Any, plan: dict[str, Any], eval_dirs: Sequence[Path], val_indices: Sequence[Sequence[int]],
                     n_boot: int = 1000) -> dict[str, Any]:
    """Out-of-fold figures of the folds' validation predictions (fold k's in eval_dirs[k], on val_indices[k])."""
    dims = int(plan["spatial_dims"])
    metric = DetectionMetric(int(plan["num_classes"]), list(dataset.classes))
    indices, predictions = [], []
    empty = {"boxes": np.zeros((0, 2 * dims)), "scores": np.zeros(0), "labels": np.zeros(0, int)}
    kinds = getattr(dataset, "box_kinds", None)  # VOC difficult, COCO crowd: ignored
    for folder, fold_indices in zip(eval_dirs, val_indices):
        found = read_results(Path(folder) / "predictions" / "results.json", dims, dataset)
        for index in fold_indices:
            pred = found.get(dataset.case_ids[int(index)], empty)  # a case without any box has no record
            spacing = tuple(reversed(dataset.load_geometry(int(index)).spacing)) if dims == 3 else None
            metric.update(pred["boxes"], pred["scores"], pred["labels"], dataset.boxes[index], dataset.labels[index],
                          spacing=spacing, gt_ignore=kinds(int(index)) if kinds else None)
            indices.append(int(index))
            predictions.append(pred)
    result = metric.compute()
    values = result["metrics"]
    if "target_spacing" in plan and getattr(dataset, "geometries", None):
        from medsight.tasks.detection.world import luna16_scores

        luna = luna16_scores(dataset, indices, predictions)  # the rule each fold's own evaluation used
        values.update(froc=luna["sensitivity"], cpm=luna["cpm"])
    intervals = detection_bootstrap_ci(metric, n_boot=n_boot)
    metrics = {name: {"value": values[name], "ci95": intervals[name]} for name in NAMES}
    metrics["cpm"] = {"value": values["cpm"], "ci95": None}
    return {"num_cases": len(indices), "num_boxes": int(sum(len(dataset.boxes[i]) for i in indices)),
            "metrics": metrics, "froc": values["froc"],
            "per_class": {name: {"ap_50": c["ap_50"], "ap_50_95": c["ap_50_95"], "num_boxes": c["num_boxes"]}
                          for name, c in result["per_class"].items()},
            "intervals": f"bootstrap 95% percentile intervals, {n_boot} resamples of the images (scans)"}
