"""Segmentation metrics per case and class with MONAI: Dice, IoU, HD95, normalised surface Dice (NSD), and
lesion-wise detection (F1, precision, recall over connected components).

Conventions (DESIGN.md): foreground classes only; a class absent from both prediction and reference counts
as Dice 1, IoU 1, HD95 0 and NSD 1. A class present in only one of them gets Dice 0, IoU 0, NSD 0 and, as
HD95, the diagonal of the image in mm (the worst distance possible inside it) so that the mean stays finite.
Distances are in mm from the voxel spacing. HD95 is MONAI's: the larger of the two directed 95th percentiles
of boundary distances. NSD is computed on surface elements (MONAI's ``use_subvoxels=True``: each boundary
element weighted by its area, as in the surface-distance package of Nikolov et al.), at a tolerance in mm
per class (``evaluation.nsd_tolerance_mm`` in the plan, or ``evaluate --nsd-tolerance``). The exact wording
of each definition is written into metrics.json (``medsight.metrics.definitions``).

Lesion-wise: per class, connected components (full connectivity) of the prediction and the reference; a
reference component overlapped by any predicted voxel of the class is a true positive, one without is a false
negative, and a predicted component that overlaps no reference voxel is a false positive. Counts are pooled
over cases: recall TP / (TP + FN), precision TP / (TP + FP), F1 2TP / (2TP + FP + FN).
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any, Sequence

import numpy as np
import torch

from medsight.errors import MedsightError


NSD_TOLERANCE_MM = 1.0
METRIC_NAMES = ("dice", "iou", "hd95", "nsd")
LESION_COUNTS = ("lesion_tp", "lesion_fp", "lesion_fn")


def one_hot(label: np.ndarray, classes: Sequence[int]) -> torch.Tensor:
    """(1, len(classes), *spatial) bool tensor of the given label values."""
    tensor = torch.from_numpy(np.ascontiguousarray(label))
    return torch.stack([tensor == c for c in classes])[None]


def tolerances_for(tolerance: float | Sequence[float], classes: Sequence[int], where: Any = None) -> list[float]:
    """One NSD tolerance in mm per foreground class, from a number or a per-class list."""
    if isinstance(tolerance, (int, float)):
        values = [float(tolerance)] * len(classes)
    else:
        values = [float(v) for v in tolerance]
        if len(values) != len(classes):
            raise MedsightError(where, f"gives {len(values)} NSD tolerances for {len(classes)} foreground classes")
    if any(not np.isfinite(v) or v < 0 for v in values):
        raise MedsightError(where, f"NSD tolerance {tolerance} must be a non-negative number of mm")
    return values


def surface_elements_supported() -> bool:
    """Whether this MONAI's compute_surface_dice takes use_subvoxels (MONAI 1.3 and later)."""
    from monai.metrics import compute_surface_dice

    return "use_subvoxels" in inspect.signature(compute_surface_dice).parameters


def lesion_counts(pred: np.ndarray, ref: np.ndarray) -> dict[str, int]:
    """True positive, false positive and false negative components of one class (boolean masks)."""
    from scipy import ndimage

    structure = ndimage.generate_binary_structure(ref.ndim, ref.ndim)
    ref_components, n_ref = ndimage.label(ref, structure)
    pred_components, n_pred = ndimage.label(pred, structure)
    found = np.unique(ref_components[pred & (ref_components > 0)])
    touching = np.unique(pred_components[ref & (pred_components > 0)])
    return {"lesion_tp": int(len(found)), "lesion_fn": int(n_ref - len(found)), "lesion_fp": int(n_pred - len(touching))}


def case_metrics(pred: np.ndarray, ref: np.ndarray, classes: Sequence[int], spacing: Sequence[float] | None = None,
                 tolerance: float | Sequence[float] = NSD_TOLERANCE_MM) -> dict[int, dict[str, float]]:
    """{class value: {dice, iou, hd95, nsd, lesion_tp, lesion_fp, lesion_fn}} for one case (label maps of one shape)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    spacing = [1.0] * ref.ndim if spacing is None else [float(s) for s in spacing]
    tolerances = tolerances_for(tolerance, classes)
    surface = {"use_subvoxels": True} if surface_elements_supported() else {}
    # background channel first so MONAI's include_background=False drops it
    y_pred, y = one_hot(pred, [0, *classes]).float(), one_hot(ref, [0, *classes]).float()
    with warnings.catch_warnings():  # MONAI warns about empty classes, which are handled below
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own internal deprecation notice
        dice = compute_dice(y_pred, y, include_background=False, ignore_empty=False)[0]
        iou = compute_iou(y_pred, y, include_background=False, ignore_empty=False)[0]
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=False, percentile=95, spacing=spacing)[0]
        nsd = compute_surface_dice(y_pred, y, tolerances, include_background=False, spacing=spacing, **surface)[0]
    diagonal = float(np.sqrt(sum((n * s) ** 2 for n, s in zip(ref.shape, spacing))))
    out: dict[int, dict[str, float]] = {}
    for k, c in enumerate(classes):
        in_pred, in_ref = bool(y_pred[0, k + 1].any()), bool(y[0, k + 1].any())
        if not in_pred and not in_ref:
            out[c] = {"dice": 1.0, "iou": 1.0, "hd95": 0.0, "nsd": 1.0}
        elif not (in_pred and in_ref):
            out[c] = {"dice": 0.0, "iou": 0.0, "hd95": diagonal, "nsd": 0.0}
        else:
            out[c] = {"dice": float(dice[k]), "iou": float(iou[k]), "hd95": float(hd95[k]), "nsd": float(nsd[k])}
        out[c].update(lesion_counts(pred == c, ref == c))
    return out


def lesion_scores(tp: int, fp: int, fn: int) -> dict[str, float]:
    """Lesion-wise F1, precision and recall from pooled component counts (NaN where undefined)."""
    def ratio(a: float, b: float) -> float:
        return float(a / b) if b else float("nan")

    return {"lesion_f1": ratio(2 * tp, 2 * tp + fp + fn), "lesion_precision": ratio(tp, tp + fp),
            "lesion_recall": ratio(tp, tp + fn)}


class SegmentationMetrics:
    """Accumulates per-case metrics (update) and summarises them into metrics.json fields (compute)."""

    def __init__(self, labels: dict[int, str], tolerance: float | Sequence[float] = NSD_TOLERANCE_MM):
        self.labels = {int(k): v for k, v in labels.items() if int(k) != 0}
        self.tolerance = tolerances_for(tolerance, list(self.labels))
        self.reset()

    def reset(self) -> None:
        self.cases: list[dict[str, Any]] = []

    def update(self, case_id: str, pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float] | None = None) -> dict[str, Any]:
        values = case_metrics(pred, ref, list(self.labels), spacing, self.tolerance)
        row: dict[str, Any] = {"case": case_id}
        for name in METRIC_NAMES:
            row[name] = float(np.mean([values[c][name] for c in self.labels]))
        row["per_class"] = {self.labels[c]: values[c] for c in self.labels}
        self.cases.append(row)
        return row

    def compute(self) -> dict[str, Any]:
        """{"num_cases", "metrics", "per_class", "per_case", "definitions"}: means over foreground classes and
        cases; lesion-wise scores from component counts pooled over cases."""
        from medsight.metrics.definitions import segmentation_definitions

        per_class = {}
        for name in self.labels.values():
            per_class[name] = {m: _mean([row["per_class"][name][m] for row in self.cases]) for m in METRIC_NAMES}
            counts = {k: int(sum(row["per_class"][name][k] for row in self.cases)) for k in LESION_COUNTS}
            per_class[name].update(lesion_scores(counts["lesion_tp"], counts["lesion_fp"], counts["lesion_fn"]), **counts)
        metrics = {m: _mean([per_class[n][m] for n in per_class]) for m in METRIC_NAMES}
        metrics["lesion_f1"] = _mean([v["lesion_f1"] for v in per_class.values() if np.isfinite(v["lesion_f1"])])
        names = list(self.labels.values())
        return {"num_cases": len(self.cases), "metrics": metrics, "per_class": per_class, "per_case": self.cases,
                "nsd_tolerance_mm": dict(zip(names, self.tolerance)),
                "definitions": segmentation_definitions(self.tolerance, names, surface_elements_supported())}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
