"""Segmentation evaluation of a split: predicted masks, metrics.json and report.html."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.io.images import read_image
from medsight.jsonio import save_json
from medsight.io.nested_labels import nested_pair
from medsight.metrics.lesions import case_lesions, summarise
from medsight.metrics.segmentation import NSD_TOLERANCE_MM, SegmentationMetrics, tolerances_for
from medsight.tasks.segmentation.infer import predict_label
from medsight.tasks.segmentation.predict import output_suffix, write_mask
from medsight.tasks.segmentation.report import write_segmentation_report


def evaluate_segmentation(task, run, model, dataset, split: str, out_dir: Path) -> dict[str, Any]:
    """Predict the split's labelled cases, write predictions/, metrics.json and report.html."""
    indices = [int(i) for i in dataset.splits[split]]
    if any(dataset.cases[i].label is None for i in indices):
        raise MedsightError(dataset.path, f"split {split!r} has cases without labels; use predict for them")
    state = run.load_state()
    labels = {int(k): v for k, v in task.plan["labels"].items()}
    tolerance = task.plan.get("evaluation", {}).get("nsd_tolerance_mm", NSD_TOLERANCE_MM)
    metrics = SegmentationMetrics(labels, tolerances_for(tolerance, [k for k in labels if k != 0], run.path / "plan.json"))
    predictions = out_dir / "predictions"
    predictions.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    pair = nested_pair(labels)  # an organ and its lesions: lesion-wise figures beside the voxel ones
    lesion_cases: list[dict[str, Any]] = []
    started = time.perf_counter()
    for done, index in enumerate(indices, 1):
        case = dataset.load_case(index)
        label, _ = predict_label([model], case.image, case.spacing, task.plan, state, device=task.device)
        path = predictions / f"{case.case_id}{output_suffix(case.reference.path)}"
        write_mask(label, case.reference, path)
        written.append(path)
        metrics.update(case.case_id, label, case.label, case.spacing)
        if pair is not None:
            lesion_cases.append({"case": case.case_id, **case_lesions(label == pair[1], case.label == pair[1], case.spacing)})
        if done % 10 == 0 or done == len(indices):
            elapsed = time.perf_counter() - started
            print(f"evaluated {done}/{len(indices)} cases, ~{elapsed / done * (len(indices) - done):.0f}s left",
                  flush=True, file=sys.stderr)
    result = {"task": "segmentation", "split": split, **metrics.compute(),
              "postprocessing": state.get("postprocessing", {}), "tta": task.plan["inference"].get("tta", True)}
    if pair is not None:
        result["lesions"] = {"label": labels[pair[1]], **summarise(lesion_cases), "cases": lesion_cases}
    save_json(out_dir / "metrics.json", result)

    def load(position: int):
        case = dataset.load_case(indices[position])
        return case.case_id, case.image, read_image(written[position]).array[0], case.label

    details = {"run": str(run.path), "split": split, "cases": len(indices), "model": run.load_config().model}
    report = write_segmentation_report(out_dir, result, load, labels, f"Segmentation: {Path(dataset.path).name}, {split} split",
                                       details)
    return {**result, "report": str(report)}
