"""Slice pictures for the page's slider: a predicted 3D label map over its volume, one PNG per slice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError
from medsight.explain.overlay import LABEL_COLOURS, blend_labels, display_rgb, display_window, save_picture
from medsight.io.images import read_image

MAX_SLICES = 160  # more are skipped evenly: the answer stays a few MB at most


def label_slices(record: dict[str, Any], out_dir: Path) -> list[Path]:
    """Per-slice overlays when a record's "output" is an integer mask of its 3D "input"; else nothing.

    Any task whose prediction is a label map written in the input's geometry (segmentation) gets a slider;
    the check is on the files, so the server needs no knowledge of the task.
    """
    source, output = record.get("input"), record.get("output")
    if not (isinstance(source, str) and isinstance(output, str)) or out_dir not in Path(output).parents:
        return []
    try:
        image, mask = read_image(source), read_image(output)
    except MedsightError:
        return []
    if image.spatial_dims != 3 or mask.shape != image.shape or not np.issubdtype(mask.array.dtype, np.integer):
        return []
    labels = mask.array[0]
    colours = [LABEL_COLOURS[k % len(LABEL_COLOURS)] for k in range(max(1, int(labels.max())))]
    window = display_window(image.array)
    depth = image.shape[0]
    chosen = np.unique(np.linspace(0, depth - 1, min(depth, MAX_SLICES)).round().astype(int))
    folder = out_dir / "overlays" / "slices"
    return [save_picture(blend_labels(display_rgb(image.array[:, z], window), labels[z], colours),
                         folder / f"z{z:04d}.png", f"z={z}") for z in chosen]
