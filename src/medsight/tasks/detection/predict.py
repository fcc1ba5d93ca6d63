"""Detection prediction of image files: COCO-style results.json (world coordinates for 3D) and overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import read_image
from medsight.io.inputs import output_names
from medsight.jsonio import save_json
from medsight.tasks.detection.evaluate import SHOW_SCORE, category_ids, draw_overlay, result_records
from medsight.tasks.detection.infer import detect_image
from medsight.tasks.detection.tiling import read_near_scale
from medsight.tasks.detection.world import write_submission


def predict_detection(task: Any, run: Any, models: list[Any], inputs: Sequence[Path], out_dir: Path,
                      names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Boxes for each input -> out_dir/results.json (COCO-style; world coordinates for 3D) and overlays/."""
    classes = list(task.info.get("classes", []))
    categories = category_ids(classes, task.info)  # a run trained on a COCO file answers in its category ids
    out_dir.mkdir(parents=True, exist_ok=True)
    records, rows = [], []
    for path, name in zip(inputs, names if names is not None else output_names(inputs)):
        # a photograph is decoded at the plan's scale, not in full; its boxes come back in full-image pixels
        image, full = read_near_scale(path, task.plan) if task.plan["spatial_dims"] == 2 else (read_image(path), None)
        # a scan planned in mm stays in its own dtype (int16 CT): it is resampled slab by slab
        raw = np.asarray(image.array) if "target_spacing" in task.plan else np.asarray(image.array, dtype=np.float32)
        if raw.ndim - 1 != task.plan["spatial_dims"]:
            raise MedsightError(path, f"is a {raw.ndim - 1}D image but this run's model detects in {task.plan['spatial_dims']}D")
        found = detect_image(models, raw, task.plan, task.device, tuple(reversed(image.spacing)) if image.spacing else None,
                             source_shape=full)
        case_records = result_records(name, found, classes, image if raw.ndim == 4 else None, categories)
        for r in case_records:
            r["file"] = str(path)
        records += case_records
        overlay = draw_overlay(raw, on_grid(found, full, raw.shape[1:]), None, out_dir / "overlays" / f"{name}.png", classes)
        rows.append({"input": str(path), "boxes": int((found["scores"] >= SHOW_SCORE).sum()), "overlay": str(overlay),
                     "detections": case_records})
    save_json(out_dir / "results.json", records)
    if task.plan["spatial_dims"] == 3:
        write_submission(out_dir / "submission.csv", records)  # LUNA16's format
    for row in rows:
        row["results"] = str(out_dir / "results.json")
    return rows


def on_grid(found: dict[str, np.ndarray], full: Sequence[int] | None, shape: Sequence[int]) -> dict[str, np.ndarray]:
    """Boxes in full-image pixels moved onto the grid of the decoded picture that the overlay is drawn on."""
    if not full or tuple(full) == tuple(shape):
        return found
    ratio = np.array(shape, float) / np.array(full, float)
    return {**found, "boxes": np.asarray(found["boxes"], float) * np.concatenate([ratio, ratio])}
