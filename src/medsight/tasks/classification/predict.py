"""Classification on files: CSV of classes and probabilities at the run's operating point, overlays, Grad-CAM.

Outputs in out_dir: predictions.csv (file, class, one probability column per class, the operating point),
overlays/<name>.png (the image with its class; 3D: the middle slice), and with explain
explain/<name>_gradcam.png, _gradcampp.png (3D: the middle and the most activated slices) plus .npy
heat maps at the image's own resolution. Each returned record lists its pictures under "images" so the
server can show them without knowing the task.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from medsight.data.preprocess import decode_size, prepare_record
from medsight.data.steps import Prepared
from medsight.errors import MedsightError
from medsight.explain.gradcam import explain
from medsight.explain.overlay import blend_heat, display_rgb, key_slices, resize_map, save_picture
from medsight.io.images import read_image
from medsight.io.inputs import output_names
from medsight.jsonio import atomic_write
from medsight.metrics.operating_point import apply_operating_point
from medsight.progress import Progress

CHUNK = 32  # images read, prepared and predicted together


def operating_point_of(run: Any, num_labels: int, multilabel: bool) -> dict[str, Any]:
    """The run's chosen operating point (state.json), made to fit the label layout."""
    point = dict(run.load_state().get("operating_point") or {"rule": "argmax"})
    if multilabel and "thresholds" not in point:
        point["thresholds"] = [float(point.pop("threshold", 0.5))] * num_labels
    if not multilabel:
        point.pop("thresholds", None)
    return point


def describe_point(point: dict[str, Any], classes: Sequence[str]) -> str:
    """The operating point in words for the CSV, e.g. "balanced_accuracy: p(lesion) >= 0.4127"."""
    rule = point.get("rule", "argmax")
    if "thresholds" in point:
        return f"{rule}: " + "; ".join(f"p({c}) >= {t:.4g}" for c, t in zip(classes, point["thresholds"]))
    if "threshold" in point:
        positive = classes[int(point.get("positive_class", 1))]
        return f"{rule}: p({positive}) >= {float(point['threshold']):.4g}"
    if "log_offsets" in point:
        return f"{rule}: argmax of log p + class offsets " + ", ".join(f"{v:+.3f}" for v in point["log_offsets"])
    return "argmax"


def ensemble_probabilities(task: Any, models: Sequence[Any], images: torch.Tensor) -> np.ndarray:
    """Mean of the members' probabilities (softmax, or sigmoid per label)."""
    return np.mean([task.probabilities(task.predict_tensor(m, images)) for m in models], axis=0)


def decided_labels(probs: np.ndarray, point: dict[str, Any], classes: Sequence[str], multilabel: bool) -> list[str]:
    decisions = apply_operating_point(probs, point)
    if multilabel:
        return [";".join(c for c, on in zip(classes, row) if on) for row in decisions]
    return [classes[int(k)] for k in decisions]


def predict_classification(task: Any, run: Any, models: list, inputs: Sequence[Path], out_dir: Path,
                           explain: bool = False, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Predict each input, write predictions.csv and pictures to out_dir, return one record per input."""
    plan, classes = task.plan, list(task.info["classes"])
    multilabel = bool(plan.get("multilabel", False))
    point = operating_point_of(run, len(classes), multilabel)
    point_text = describe_point(point, classes)
    names = list(names) if names is not None else output_names(inputs)
    records: list[dict[str, Any]] = []
    failures: list[tuple[Path, str]] = []
    chunks = [list(range(i, min(i + CHUNK, len(inputs)))) for i in range(0, len(inputs), CHUNK)]
    meter = Progress(len(inputs), "predict")
    for chunk in chunks:
        images, tensors, kept, prepared = [], [], [], []
        for i in chunk:
            try:
                image = read_image(inputs[i], reduce_to=decode_size(plan))
                if image.spatial_dims != plan["spatial_dims"]:
                    raise MedsightError(inputs[i], f"is {image.spatial_dims}D but this model takes "
                                                   f"{plan['spatial_dims']}D images")
                prepared.append(prepare_record(image.array, plan))
                tensors.append(prepared[-1].image)
                images.append(image)
                kept.append(i)
            except MedsightError as exc:
                if len(inputs) == 1:
                    raise
                failures.append((inputs[i], exc.problem))
                print(f"medsight: skipped {exc}", file=sys.stderr, flush=True)
        if kept:
            batch = torch.stack(tensors)
            probs = ensemble_probabilities(task, models, batch)
            labels = decided_labels(probs, point, classes, multilabel)
            for row, i in enumerate(kept):
                record = {"file": str(inputs[i]), "name": names[i], "class": labels[row],
                          "probabilities": {c: float(p) for c, p in zip(classes, probs[row])},
                          "operating_point": point_text}
                record["images"] = {"overlay": write_overlay(images[row].array, record, out_dir / "overlays", names[i])}
                if explain:
                    class_index = int(np.argmax(probs[row])) if multilabel else classes.index(labels[row])
                    write_explanations(models, batch[row], class_index, images[row].array, record, out_dir / "explain",
                                       prepared[row])
                records.append(record)
        meter.advance(len(chunk))
    if not records:
        raise MedsightError(inputs[0] if len(inputs) == 1 else out_dir, "no input could be predicted "
                            f"({failures[0][0]}: {failures[0][1]})" if failures else "no inputs to predict")
    write_csv(out_dir / "predictions.csv", records, failures, classes, point_text)
    return records


def write_summary(task: Any, run: Any, out_dir: Path, records: list[dict[str, Any]],
                  failures: list[tuple[Path, str]]) -> None:
    """predictions.csv over all the inputs of a prediction (predicted case by case)."""
    classes = list(task.info["classes"])
    point = describe_point(operating_point_of(run, len(classes), bool(task.plan.get("multilabel", False))), classes)
    write_csv(out_dir / "predictions.csv", records, failures, classes, point)


def write_csv(path: Path, records: list[dict[str, Any]], failures: list[tuple[Path, str]], classes: Sequence[str],
              point_text: str) -> None:
    """predictions.csv: one row per input; inputs that could not be read keep a row with the reason."""
    columns = ["file", "class", *[f"prob_{c}" for c in classes], "operating_point", "error"]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for r in records:
                writer.writerow([r["file"], r["class"], *[f"{r['probabilities'][c]:.6f}" for c in classes],
                                 r["operating_point"], ""])
            for file, problem in failures:
                writer.writerow([str(file), "", *[""] * len(classes), point_text, problem])

    atomic_write(path, write)


def _caption(record: dict[str, Any]) -> str:
    best = max(record["probabilities"].items(), key=lambda kv: kv[1])
    return f"{record['class'] or '(none)'}  p({best[0]})={best[1]:.2f}"


def write_overlay(array: np.ndarray, record: dict[str, Any], folder: Path, name: str) -> list[str]:
    """The image with its predicted class written over it (3D: the middle slice)."""
    if array.ndim == 3:
        return [str(save_picture(display_rgb(array), folder / f"{name}.png", _caption(record)))]
    z = array.shape[1] // 2
    return [str(save_picture(display_rgb(array[:, z]), folder / f"{name}_z{z}.png", f"z={z}  {_caption(record)}"))]


def write_explanations(models: Sequence[Any], prepared: torch.Tensor, class_index: int, array: np.ndarray,
                       record: dict[str, Any], folder: Path, steps: Prepared) -> None:
    """Grad-CAM and Grad-CAM++ for the decided class: PNG overlays and .npy maps at the image's resolution.

    steps: the record of the input's preprocessing, which maps the network's maps back (zero outside a crop)."""
    name = record["name"]
    maps = explain(models, prepared, class_index)
    record["arrays"] = {}
    for method, heat in maps.items():
        heat = steps.invert(heat[None], lambda a, shape: resize_map(a[0], shape)[None], fill=[0.0])[0]
        npy = folder / f"{name}_{method}.npy"
        npy.parent.mkdir(parents=True, exist_ok=True)
        np.save(npy, heat.astype(np.float32))
        record["arrays"][method] = str(npy)
        if array.ndim == 3:
            pictures = [save_picture(blend_heat(display_rgb(array), heat), folder / f"{name}_{method}.png", method)]
        else:
            pictures = [save_picture(blend_heat(display_rgb(array[:, z]), heat[z]), folder / f"{name}_{method}_z{z}.png",
                                     f"{method} z={z}") for z in key_slices(array.shape[1], heat)]
        record["images"][method] = [str(p) for p in pictures]
