"""Lesion-wise segmentation metrics: each connected lesion counts once, whatever its size.

Voxel Dice is dominated by the large lesions; a reader cares whether each lesion was found. A reference
lesion (26-connected component) is detected when a predicted lesion overlaps it; its Dice is taken against
the predicted components that overlap it. A predicted component overlapping no reference lesion is a false
positive. Sizes are equivalent-sphere diameters in mm, so the bins mean the same on any grid.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

SIZE_BINS_MM = (10.0, 20.0)  # -> "<10 mm", "10-20 mm", ">=20 mm"


def components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    return ndimage.label(mask, structure=np.ones((3,) * mask.ndim, bool))


def diameter_mm(voxels: int, spacing: Sequence[float]) -> float:
    volume = voxels * float(np.prod(spacing))
    return float((6 * volume / np.pi) ** (1 / 3)) if len(spacing) == 3 else float(2 * np.sqrt(volume / np.pi))


def bin_name(diameter: float, bins: Sequence[float]) -> str:
    edges = list(bins)
    if diameter < edges[0]:
        return f"<{edges[0]:g} mm"
    for low, high in zip(edges, edges[1:]):
        if diameter < high:
            return f"{low:g}-{high:g} mm"
    return f">={edges[-1]:g} mm"


def case_lesions(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float]) -> dict[str, Any]:
    """Per reference lesion (diameter, detected, Dice) and the count of false-positive predicted lesions."""
    ref_parts, n_ref = components(ref)
    pred_parts, n_pred = components(pred)
    lesions = []
    matched_pred: set[int] = set()
    for k in range(1, n_ref + 1):
        this = ref_parts == k
        hits = np.unique(pred_parts[this & (pred_parts > 0)])
        matched_pred.update(int(h) for h in hits)
        found = np.isin(pred_parts, hits) if len(hits) else np.zeros_like(this)
        dice = 2.0 * float((found & this).sum()) / float(found.sum() + this.sum())
        lesions.append({"diameter_mm": round(diameter_mm(int(this.sum()), spacing), 2), "detected": bool(len(hits)),
                        "dice": round(dice, 4)})
    return {"lesions": lesions, "predicted": int(n_pred), "false_positives": int(n_pred - len(matched_pred))}


def summarise(cases: Sequence[dict[str, Any]], bins: Sequence[float] = SIZE_BINS_MM) -> dict[str, Any]:
    """Recall, precision and mean per-lesion Dice over cases, overall and by size bin."""
    lesions = [lesion for case in cases for lesion in case["lesions"]]
    predicted = sum(c["predicted"] for c in cases)
    false_pos = sum(c["false_positives"] for c in cases)

    def figures(group: list[dict[str, Any]]) -> dict[str, Any]:
        found = sum(lesion["detected"] for lesion in group)
        return {"lesions": len(group), "detected": int(found),
                "recall": found / len(group) if group else float("nan"),
                "dice_per_lesion": float(np.mean([lesion["dice"] for lesion in group])) if group else float("nan")}

    out = figures(lesions)
    out.update(predicted=predicted, false_positives=false_pos,
               precision=(predicted - false_pos) / predicted if predicted else float("nan"),
               by_size={name: figures([x for x in lesions if bin_name(x["diameter_mm"], bins) == name])
                        for name in [bin_name(b - 1e-9, bins) for b in bins] + [bin_name(bins[-1], bins)]})
    return out
