"""FROC and CPM by the LUNA16 rule, with the IoU-based hit kept as a named alternative.

LUNA16 rule (Setio et al. 2017, the challenge's evaluation script):

- a candidate **hits** a reference lesion when its centre lies strictly inside the lesion's sphere: squared
  distance in world millimetres < (diameter / 2)^2;
- each reference counts **once**, as a true positive at the highest score among the candidates that hit it;
  the other candidates on a found lesion are ignored (neither true nor false positive); a candidate that hits
  two lesions counts for both;
- every candidate that hits no reference is a **false positive**; a reference that no candidate hits is
  missed (it stays in the denominator of the sensitivity);
- the **curve** has one point per distinct score threshold (and (0, 0)): false positives per scan against
  sensitivity; the sensitivity at a rate is read off it by linear interpolation (``np.interp``, which at a
  rate shared by several points takes the last, highest one), as the script does. Without score ties this
  is the sensitivity at the lowest threshold that keeps the false positives per scan at or below the rate;
- **CPM** is the mean sensitivity at 1/8, 1/4, 1/2, 1, 2, 4 and 8 false positives per scan.

``froc_iou`` applies the same counting with a different hit: IoU >= 0.1 between boxes (in voxels).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
IOU_HIT = 0.1


def froc_luna16(predictions: Sequence[Mapping[str, Any]], references: Sequence[Mapping[str, Any]],
                fps_per_scan: Sequence[float] = FROC_RATES, n_scans: int | None = None) -> dict[str, Any]:
    """FROC by the LUNA16 rule.

    predictions: ``{"case", "centre_mm": (x, y, z), "score"}``; references: ``{"case", "centre_mm",
    "diameter_mm"}``. n_scans: scans evaluated (default: the cases named in either list; pass it when some
    scans have neither a candidate nor a lesion). Returns ``{"sensitivity": {rate: value}, "cpm",
    "curve": {"fp_per_scan", "sensitivity"}, "num_references", "num_found", "num_scans"}``.
    """
    by_case: dict[str, tuple[list, list]] = defaultdict(lambda: ([], []))
    for p in predictions:
        by_case[str(p["case"])][0].append(p)
    for r in references:
        by_case[str(r["case"])][1].append(r)
    hits, scores = [], []
    for preds, refs in by_case.values():
        if len(preds) and len(refs):
            centres = np.asarray([p["centre_mm"] for p in preds], float)
            lesions = np.asarray([r["centre_mm"] for r in refs], float)
            radius = np.asarray([float(r["diameter_mm"]) / 2 for r in refs])
            squared = ((centres[:, None, :] - lesions[None, :, :]) ** 2).sum(-1)
            hits.append(squared < radius[None, :] ** 2)
        else:
            hits.append(np.zeros((len(preds), len(refs)), dtype=bool))
        scores.append(np.asarray([float(p["score"]) for p in preds]))
    scans = len(by_case) if n_scans is None else int(n_scans)
    return froc_from_hits(hits, scores, scans, fps_per_scan)


def froc_iou(pred_boxes: Sequence[np.ndarray], pred_scores: Sequence[np.ndarray], ref_boxes: Sequence[np.ndarray],
             n_scans: int | None = None, fps_per_scan: Sequence[float] = FROC_RATES, iou: float = IOU_HIT) -> dict[str, Any]:
    """The alternative: a hit is IoU >= ``iou`` between a predicted and a reference box (one list entry per scan)."""
    from medsight.metrics.detection import box_iou

    hits = [box_iou(np.asarray(p, float), np.asarray(r, float)) >= iou if len(p) and len(r)
            else np.zeros((len(p), len(r)), dtype=bool) for p, r in zip(pred_boxes, ref_boxes)]
    scans = len(hits) if n_scans is None else int(n_scans)
    return froc_from_hits(hits, [np.asarray(s, float) for s in pred_scores], scans, fps_per_scan)


def froc_from_hits(hits: Sequence[np.ndarray], scores: Sequence[np.ndarray], n_scans: int,
                   fps_per_scan: Sequence[float] = FROC_RATES) -> dict[str, Any]:
    """FROC from per-scan (candidates x references) hit matrices and candidate scores (the counting above)."""
    found_scores, fp_scores, num_refs = [], [], 0
    for hit, score in zip(hits, scores):
        num_refs += hit.shape[1]
        if hit.shape[0]:
            found = hit.any(axis=0)
            # each found reference once, at the best score that hits it
            found_scores += [float(score[hit[:, j]].max()) for j in np.where(found)[0]]
            fp_scores += score[~hit.any(axis=1)].tolist()
    fp_per_scan, sensitivity = froc_curve(np.asarray(found_scores), np.asarray(fp_scores), num_refs, n_scans)
    rates = [float(r) for r in fps_per_scan]
    if num_refs == 0:
        values = [float("nan")] * len(rates)
    else:
        values = [float(v) for v in np.interp(rates, fp_per_scan, sensitivity)]
    return {"sensitivity": {f"{r:g}": v for r, v in zip(rates, values)},
            "cpm": float(np.mean(values)) if values else float("nan"),
            "curve": {"fp_per_scan": fp_per_scan.tolist(), "sensitivity": sensitivity.tolist()},
            "num_references": int(num_refs), "num_found": len(found_scores), "num_scans": int(n_scans)}


def froc_curve(found_scores: np.ndarray, fp_scores: np.ndarray, num_refs: int, n_scans: int) -> tuple[np.ndarray, np.ndarray]:
    """(false positives per scan, sensitivity) at (0, 0) and at every distinct score, highest first."""
    thresholds = np.unique(np.concatenate([found_scores, fp_scores]))[::-1]
    tp = np.searchsorted(np.sort(found_scores), thresholds, side="left")
    fp = np.searchsorted(np.sort(fp_scores), thresholds, side="left")
    tp = len(found_scores) - tp  # candidates scoring >= each threshold
    fp = len(fp_scores) - fp
    fp_per_scan = np.concatenate([[0.0], fp / max(n_scans, 1)])
    sensitivity = np.concatenate([[0.0], tp / max(num_refs, 1)])
    return fp_per_scan, sensitivity
