"""LUNA16's FROC: a prediction finds a nodule when its centre lies within the nodule's radius (in mm).

Per scan, each reference nodule counts once (its best-scoring hit); further hits on an already found nodule
are neither true nor false positives; a prediction within no nodule's radius is a false positive. The
sensitivity at each false-positive rate per scan is read off the curve; CPM is their mean.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

LUNA16_RATES = (0.125, 0.25, 0.5, 1, 2, 4, 8)


def froc_luna16(predictions: Sequence[dict[str, Any]], references: Sequence[dict[str, Any]],
                fps_per_scan: Sequence[float] = LUNA16_RATES, n_scans: int | None = None) -> dict[str, Any]:
    """predictions: {"case", "centre_mm": (x, y, z), "score"}; references: {"case", "centre_mm", "diameter_mm"}."""
    cases = {str(r["case"]) for r in references} | {str(p["case"]) for p in predictions}
    scans = int(n_scans) if n_scans is not None else len(cases)
    by_case: dict[str, list[dict[str, Any]]] = {}
    for r in references:
        by_case.setdefault(str(r["case"]), []).append(r)
    order = sorted(range(len(predictions)), key=lambda i: -float(predictions[i]["score"]))
    found: set[tuple[str, int]] = set()
    scores, hits = [], []  # hits: 1 true positive, 0 false positive (ignored ones are left out)
    for i in order:
        p = predictions[i]
        case = str(p["case"])
        centre = np.asarray(p["centre_mm"], dtype=float)
        inside = [k for k, r in enumerate(by_case.get(case, []))
                  if np.linalg.norm(centre - np.asarray(r["centre_mm"], float)) <= float(r["diameter_mm"]) / 2]
        if not inside:
            scores.append(float(p["score"]))
            hits.append(0)
            continue
        new = [k for k in inside if (case, k) not in found]
        if new:
            found.add((case, new[0]))
            scores.append(float(p["score"]))
            hits.append(1)
    total = len(references)
    hits_arr = np.asarray(hits, dtype=int)
    tp, fp = np.cumsum(hits_arr == 1), np.cumsum(hits_arr == 0)
    sensitivity = tp / max(total, 1)
    fp_rate = fp / max(scans, 1)
    at_rate = {}
    for rate in fps_per_scan:
        allowed = np.where(fp_rate <= rate)[0]
        at_rate[f"{rate:g}"] = float(sensitivity[allowed[-1]]) if len(allowed) else 0.0
    return {"sensitivity": at_rate, "cpm": float(np.mean(list(at_rate.values()))) if total else float("nan"),
            "curve": {"fp_per_scan": fp_rate.tolist(), "sensitivity": sensitivity.tolist()},
            "num_nodules": total, "num_scans": scans}
