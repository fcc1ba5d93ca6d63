"""`medsight evaluate --pred DIR --ref DIR`: segmentation metrics from two folders of label maps, no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import is_image_file, read_image, strip_suffix
from medsight.io.segmentation import parse_labels
from medsight.jsonio import save_json
from medsight.metrics.segmentation import NSD_TOLERANCE_MM, SegmentationMetrics, tolerances_for
from medsight.tasks.segmentation.report import write_segmentation_report


def _label_files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise MedsightError(folder, "is not a folder")
    return {strip_suffix(p): p for p in sorted(folder.iterdir()) if is_image_file(p)}


def _label_names(ref: Path, values: set[int]) -> dict[int, str]:
    """Names from a dataset.json beside or above the reference folder, else 'label_<value>'."""
    for candidate in (ref / "dataset.json", ref.parent / "dataset.json"):
        if candidate.is_file():
            try:
                return parse_labels(json.loads(candidate.read_text(encoding="utf-8")).get("labels"), candidate)
            except (json.JSONDecodeError, MedsightError):
                break
    return {0: "background", **{v: f"label_{v}" for v in sorted(values) if v != 0}}


def evaluate_folders(pred: Path, ref: Path, out: Path, nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Metrics of every prediction in pred against the same-named reference in ref -> out/metrics.json."""
    preds, refs = _label_files(Path(pred)), _label_files(Path(ref))
    if not refs:
        raise MedsightError(ref, "holds no label files")
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise MedsightError(pred, f"has no prediction for {len(missing)} reference case(s), e.g. {missing[0]}")
    pairs = []
    values: set[int] = set()
    for case_id, ref_path in refs.items():
        reference, prediction = read_image(ref_path), read_image(preds[case_id])
        if prediction.shape != reference.shape:
            raise MedsightError(preds[case_id], f"has shape {prediction.shape} but its reference has {reference.shape}")
        ref_array, pred_array = reference.array[0].astype(np.int64), prediction.array[0].astype(np.int64)
        values |= set(np.unique(ref_array).tolist()) | set(np.unique(pred_array).tolist())
        pairs.append((case_id, pred_array, ref_array, tuple(reversed(reference.spacing)), reference))
    labels = _label_names(Path(ref), values)
    unknown = sorted(values - set(labels))
    if unknown:
        raise MedsightError(pred, f"holds label value(s) {unknown[:5]} that the reference's dataset.json does not name")
    foreground = [v for v in labels if v != 0]
    evaluator = SegmentationMetrics(labels, tolerances_for(NSD_TOLERANCE_MM if nsd_tolerance is None else nsd_tolerance,
                                                           foreground, "--nsd-tolerance"))
    for case_id, pred_array, ref_array, spacing, _ in pairs:
        evaluator.update(case_id, pred_array, ref_array, spacing)
    result = {"task": "segmentation", "split": "folders", "pred": str(pred), "ref": str(ref), **evaluator.compute()}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "metrics.json", result)
    def load(position: int):
        case_id, pred_array, ref_array, _, reference = pairs[position]
        return case_id, reference.array, pred_array, ref_array  # no image here: the reference is the background

    result["report"] = str(write_segmentation_report(out, result, load, labels, "Segmentation: predictions vs references"))
    return result
