"""Segmentation metrics per case and class with MONAI: Dice, IoU, HD95 and normalised surface Dice (NSD).

Conventions (DESIGN.md): foreground classes only; a class absent from both prediction and reference counts
as Dice 1, IoU 1, HD95 0 and NSD 1. A class present in only one of them gets Dice 0, IoU 0, NSD 0 and, as
HD95, the diagonal of the image in mm (the worst distance possible inside it) so that the mean stays finite.
Distances are in mm from the voxel spacing.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import torch


NSD_TOLERANCE_MM = 1.0
METRIC_NAMES = ("dice", "iou", "hd95", "nsd")


def one_hot(label: np.ndarray, classes: Sequence[int]) -> torch.Tensor:
    """(1, len(classes), *spatial) bool tensor of the given label values."""
    tensor = torch.from_numpy(np.ascontiguousarray(label))
    return torch.stack([tensor == c for c in classes])[None]


def case_metrics(pred: np.ndarray, ref: np.ndarray, classes: Sequence[int], spacing: Sequence[float] | None = None,
                 tolerance: float = NSD_TOLERANCE_MM) -> dict[int, dict[str, float]]:
    """{class value: {dice, iou, hd95, nsd}} for one case (pred and ref are label maps of the same shape)."""
    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou, compute_surface_dice

    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference {ref.shape}")
    spacing = [1.0] * ref.ndim if spacing is None else [float(s) for s in spacing]
    # background channel first so MONAI's include_background=False drops it
    y_pred, y = one_hot(pred, [0, *classes]).float(), one_hot(ref, [0, *classes]).float()
    with warnings.catch_warnings():  # MONAI warns about empty classes, which are handled below
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", FutureWarning)  # MONAI's own internal deprecation notice
        dice = compute_dice(y_pred, y, include_background=False, ignore_empty=False)[0]
        iou = compute_iou(y_pred, y, include_background=False, ignore_empty=False)[0]
        hd95 = compute_hausdorff_distance(y_pred, y, include_background=False, percentile=95, spacing=spacing)[0]
        nsd = compute_surface_dice(y_pred, y, [tolerance] * len(classes), include_background=False, spacing=spacing)[0]
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
    return out


class SegmentationMetrics:
    """Accumulates per-case metrics (update) and summarises them into metrics.json fields (compute)."""

    def __init__(self, labels: dict[int, str], tolerance: float = NSD_TOLERANCE_MM):
        self.labels = {int(k): v for k, v in labels.items() if int(k) != 0}
        self.tolerance = tolerance
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
        """{"num_cases", "metrics", "per_class", "per_case"}: means over foreground classes and cases."""
        per_class = {}
        for name in self.labels.values():
            per_class[name] = {m: _mean([row["per_class"][name][m] for row in self.cases]) for m in METRIC_NAMES}
        metrics = {m: _mean([per_class[n][m] for n in per_class]) for m in METRIC_NAMES}
        return {"num_cases": len(self.cases), "metrics": metrics, "per_class": per_class,
                "per_case": self.cases, "nsd_tolerance_mm": self.tolerance}


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")
