"""Volumes for the page's 3D viewer (NiiVue): a 3D input and its predicted label map as gzipped NIfTI.

The page gets them inline as data URLs in the answer, so nothing of an upload outlives its request; a
volume over MAX_VIEWER_VOXELS is sent every n-th voxel (image and mask alike, so they stay aligned).
"""

from __future__ import annotations

import base64
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import Image, read_image, write_like

MAX_VIEWER_VOXELS = 1 << 24  # 16.7 million voxels: a few MB of gzipped int16, fine for a browser


def viewer_volumes(record: dict[str, Any], out_dir: Path) -> dict[str, str]:
    """{"image": NIfTI data URL[, "mask": ...]} for a record whose input is 3D; {} for 2D inputs.

    "mask" is the record's "output" where that is an integer label map on the input's grid (segmentation);
    the check is on the files, so the server needs no knowledge of the task.
    """
    source = record.get("input")
    if not isinstance(source, str):
        return {}
    try:
        image = read_image(source)
    except MedsightError:
        return {}
    if image.spatial_dims != 3:
        return {}
    step = max(1, math.ceil((math.prod(image.shape) / MAX_VIEWER_VOXELS) ** (1 / 3)))
    grid = _strided(image, step)
    folder = out_dir / "viewer"
    volumes = {"image": _nifti_url(write_like(_compact(image.array[0][::step, ::step, ::step]), grid,
                                              folder / "image.nii.gz"))}
    output = record.get("output")
    if isinstance(output, str) and out_dir in Path(output).parents:
        try:
            mask = read_image(output)
        except MedsightError:
            return volumes
        if mask.shape == image.shape and np.issubdtype(mask.array.dtype, np.integer):
            labels = mask.array[0][::step, ::step, ::step].astype(np.uint8 if mask.array.max() < 256 else np.int16)
            volumes["mask"] = _nifti_url(write_like(labels, grid, folder / "mask.nii.gz"))
    return volumes


def _strided(image: Image, step: int) -> Image:
    """image's geometry sampled every step-th voxel: same origin and direction, step times the spacing."""
    if step == 1:
        return image
    array = image.array[:, ::step, ::step, ::step]
    return dataclasses.replace(image, array=array, spacing=tuple(s * step for s in image.spacing), stored={})


def _compact(values: np.ndarray) -> np.ndarray:
    """int16 where the values are whole numbers that fit (CT in HU, most MR), else float32: half the bytes."""
    if np.issubdtype(values.dtype, np.integer) or np.array_equal(values, np.round(values)):
        if values.size and values.min() >= -32768 and values.max() <= 32767:
            return values.astype(np.int16)
    return values.astype(np.float32)


def _nifti_url(path: Path) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(path.read_bytes()).decode("ascii")
