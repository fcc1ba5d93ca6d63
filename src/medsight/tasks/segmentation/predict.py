"""Segmentation prediction of image files: masks written in each input's own geometry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import read_image, strip_suffix, suffix_of, write_like
from medsight.io.inputs import output_names
from medsight.io.segmentation import check_finite
from medsight.jsonio import save_json
from medsight.tasks.segmentation.infer import predict_label
from medsight.tasks.segmentation.report import save_overlay


def output_suffix(path: Path) -> str:
    """The mask's file type: the input's own, except lossy or multi-file inputs (JPEG -> PNG, DICOM -> NIfTI)."""
    suffix = suffix_of(path) if path.is_file() else ""
    if suffix in (".jpg", ".jpeg", ".bmp"):
        return ".png"
    if suffix in ("", ".dcm"):
        return ".nii.gz"
    return suffix


def write_mask(label: np.ndarray, reference, path: Path) -> Path:
    return write_like(label.astype(np.uint8), reference, path)


def _channel_files(path: Path, channels: int) -> list[Path]:
    """case_0000.ext -> [case_0000.ext, case_0001.ext, ...] for a multi-channel plan."""
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


def named_channel(path: Path, names: Sequence[str]) -> tuple[str, str] | None:
    """(case prefix, channel) of a file named after one of a run's channels, as case folders name them
    (BraTS' <case>_flair.nii.gz, KiTS' imaging.nii.gz: medsight.io.mask_pairs); None otherwise."""
    stem = strip_suffix(path)
    for name in sorted(names, key=len, reverse=True):  # t1ce before t1
        if stem.lower() == name.lower():
            return "", name
        if len(stem) > len(name) + 1 and stem.lower().endswith(name.lower()) and stem[-len(name) - 1] in "_-":
            return stem[: -len(name)], name
    return None


def _named_channel_files(path: Path, names: Sequence[str]) -> list[Path] | None:
    found = named_channel(path, names)
    if found is None:
        return None
    files = [path.with_name(f"{found[0]}{name}{suffix_of(path)}") for name in names]
    for f in files:
        if not f.exists():
            raise MedsightError(f, f"missing channel file (the model takes {', '.join(names)})")
    return files


def _read_input(path: Path, plan: dict[str, Any], names: Sequence[str] = ()):
    first = read_image(path)
    if first.array.shape[0] > 1:  # every channel in one file (MSD's 4D NIfTI, an RGB picture), not a file each
        files, images = [path], [first]
    else:
        files = (_named_channel_files(path, names) if plan["in_channels"] > 1 and names else None) or \
            _channel_files(path, plan["in_channels"])
        images = [first if f == path else read_image(f) for f in files]
    arrays = []
    for f, image in zip(files, images):
        if image.spatial_dims != plan["spatial_dims"]:
            raise MedsightError(f, f"is {image.spatial_dims}D but the model segments {plan['spatial_dims']}D images")
        check_finite(image.array, f)
        arrays.extend(image.array.astype(np.float32))
    if len(arrays) != plan["in_channels"]:
        raise MedsightError(path, f"has {len(arrays)} channel(s) but the model takes {plan['in_channels']}")
    return np.stack(arrays), images[0]


def _stands_for_case(path: Path, channels: Sequence[str]) -> bool:
    """Whether an input is predicted: the file of the first channel stands for its case; the other channels
    and a file beside them (the case's mask) are no input of their own; any other image is one."""
    found = named_channel(path, channels)
    if found is not None:
        return found[1] == channels[0]
    return not any(named_channel(f, channels) for f in path.parent.iterdir() if f != path)


def _case_name(path: Path, channels: Sequence[str], name: str) -> str:
    found = named_channel(path, channels)
    if found is None:
        return name
    prefix = found[0].rstrip("_-")
    return prefix or path.parent.name


def predict_segmentation(task, run, models: Sequence[Any], inputs: Sequence[Path], out_dir: Path,
                         explain: bool = False, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Masks (and overlays; with explain the foreground probability) for image files or DICOM series folders."""
    plan = task.plan
    state = run.load_state() if run is not None else {}
    # a run trained on case folders (a file per channel, named after it) takes such folders as they are
    channels = list(task.info.get("channels", [])) if task.info.get("mask_layout") == "cases" else []
    if plan["in_channels"] > 1:  # one input per case: its channel 0 file
        inputs = [p for p in inputs if not p.name.split(".")[0][-5:-4] == "_" or p.name.split(".")[0].endswith("_0000")]
    if channels:
        inputs = [p for p in inputs if _stands_for_case(p, channels)]
    out_dir.mkdir(parents=True, exist_ok=True)
    # nnU-Net's naming: the mask of case_0000.nii.gz (channel 0 of case) is case.nii.gz
    names = [n[:-5] if n.endswith("_0000") else n for n in (names if names is not None else output_names(inputs))]
    if channels:  # BraTS_001_flair -> BraTS_001; imaging (KiTS) -> its case folder's name
        names = [_case_name(p, channels, n) for p, n in zip(inputs, names)]
    labels = {int(k): v for k, v in plan["labels"].items()}
    records = []
    for path, name in zip(inputs, names):
        started = time.perf_counter()
        image, reference = _read_input(path, plan, channels)
        spacing = tuple(reversed(reference.spacing)) if reference.spacing else (1.0,) * plan["spatial_dims"]
        label, probs = predict_label(models, image, spacing, plan, state, device=task.device)
        mask = write_mask(label, reference, out_dir / f"{name}{output_suffix(path)}")
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
