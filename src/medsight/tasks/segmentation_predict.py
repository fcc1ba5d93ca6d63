"""Segmentation evaluation on a split and prediction of files, both writing masks in the source geometry."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.jsonio import save_json
from medsight.tasks.segmentation_infer import predict_label


def output_suffix(path: Path) -> str:
    """The mask's file type: the input's own, except lossy or multi-file inputs (JPEG -> PNG, DICOM -> NIfTI)."""
    from medsight.io.images import suffix_of

    suffix = suffix_of(path) if path.is_file() else ""
    if suffix in (".jpg", ".jpeg", ".bmp"):
        return ".png"
    if suffix in ("", ".dcm"):
        return ".nii.gz"
    return suffix


def evaluate_segmentation(task, run, model, dataset, split: str, out_dir: Path) -> dict[str, Any]:
    """Predict the split's labelled cases, write predictions/, metrics.json and report.html."""
    from medsight.io.nested_labels import nested_pair
    from medsight.metrics.lesions import case_lesions, summarise
    from medsight.metrics.segmentation import SegmentationMetrics
    from medsight.tasks.segmentation_report import write_segmentation_report

    indices = [int(i) for i in dataset.splits[split]]
    if any(dataset.cases[i].label is None for i in indices):
        raise MedsightError(dataset.path, f"split {split!r} has cases without labels; use predict for them")
    state = run.load_state()
    labels = {int(k): v for k, v in task.plan["labels"].items()}
    metrics = SegmentationMetrics(labels)
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
        _write_mask(label, case.reference, path)
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
        from medsight.io.images import read_image

        return case.case_id, case.image, read_image(written[position]).array[0], case.label

    details = {"run": str(run.path), "split": split, "cases": len(indices), "model": run.load_config().model}
    report = write_segmentation_report(out_dir, result, load, labels, f"Segmentation: {Path(dataset.path).name}, {split} split",
                                       details)
    return {**result, "report": str(report)}


def _write_mask(label: np.ndarray, reference, path: Path) -> Path:
    from medsight.io.images import write_like

    return write_like(label.astype(np.uint8), reference, path)


def _channel_files(path: Path, channels: int) -> list[Path]:
    """case_0000.ext -> [case_0000.ext, case_0001.ext, ...] for a multi-channel plan."""
    from medsight.io.images import strip_suffix, suffix_of

    if channels == 1:
        return [path]
    stem, suffix = strip_suffix(path), suffix_of(path)
    if not (len(stem) > 5 and stem[-5] == "_" and stem[-4:].isdigit()):
        raise MedsightError(path, f"the model needs {channels} channels: name the files "
                                  f"<case>_0000{suffix}, <case>_0001{suffix}, ...")
    files = [path.with_name(f"{stem[:-5]}_{c:04d}{suffix}") for c in range(channels)]
    for f in files:
        if not f.exists():
            raise MedsightError(f, "missing channel file")
    return files


def _read_input(path: Path, plan: dict[str, Any]):
    from medsight.io.images import read_image
    from medsight.io.segmentation import _check_finite

    files = _channel_files(path, plan["in_channels"])
    images = [read_image(f) for f in files]
    arrays = []
    for f, image in zip(files, images):
        if image.spatial_dims != plan["spatial_dims"]:
            raise MedsightError(f, f"is {image.spatial_dims}D but the model segments {plan['spatial_dims']}D images")
        _check_finite(image.array, f)
        arrays.extend(image.array.astype(np.float32))
    if len(arrays) != plan["in_channels"]:
        raise MedsightError(path, f"has {len(arrays)} channel(s) but the model takes {plan['in_channels']}")
    return np.stack(arrays), images[0]


def predict_segmentation(task, run, models: Sequence[Any], inputs: Sequence[Path], out_dir: Path,
                         explain: bool = False) -> list[dict[str, Any]]:
    """Masks (and overlays; with explain the foreground probability) for image files or DICOM series folders."""
    from medsight.inference.inputs import output_names
    from medsight.io.images import write_like
    from medsight.tasks.segmentation_report import save_overlay

    plan = task.plan
    state = run.load_state() if run is not None else {}
    if plan["in_channels"] > 1:  # one input per case: its channel 0 file
        inputs = [p for p in inputs if not p.name.split(".")[0][-5:-4] == "_" or p.name.split(".")[0].endswith("_0000")]
    out_dir.mkdir(parents=True, exist_ok=True)
    # nnU-Net's naming: the mask of case_0000.nii.gz (channel 0 of case) is case.nii.gz
    names = [n[:-5] if n.endswith("_0000") else n for n in output_names(inputs)]
    labels = {int(k): v for k, v in plan["labels"].items()}
    records = []
    for path, name in zip(inputs, names):
        started = time.perf_counter()
        image, reference = _read_input(path, plan)
        spacing = tuple(reversed(reference.spacing)) if reference.spacing else (1.0,) * plan["spatial_dims"]
        label, probs = predict_label(models, image, spacing, plan, state, device=task.device)
        mask = _write_mask(label, reference, out_dir / f"{name}{output_suffix(path)}")
        overlay = save_overlay(image, label, out_dir / "overlays" / f"{name}.png", title=name)
        voxel = float(np.prod(spacing))
        record = {"input": str(path), "output": str(mask), "overlay": str(overlay),
                  "volume_mm3": {labels[c]: float((label == c).sum()) * voxel for c in labels if c != 0},
                  "seconds": round(time.perf_counter() - started, 3)}
        if explain:
            foreground = (1.0 - probs[0]).numpy()
            suffix = output_suffix(path)
            if suffix in (".png", ".tif", ".tiff"):
                foreground = np.round(foreground * 255).astype(np.uint8)
            record["probability"] = str(write_like(foreground.astype(np.float32) if suffix not in (".png",) else foreground,
                                                   reference, out_dir / f"{name}_probability{suffix}"))
        records.append(record)
    save_json(out_dir / "predictions.json", records)
    return records
