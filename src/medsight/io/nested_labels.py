"""Nested labels: a lesion label that lies inside an organ label (MSD Task03 liver/cancer, KiTS kidney/tumour).

The pair is recognised from the label names: exactly two foreground labels, one named as a lesion. A lesion
component (26-connected) that touches no voxel of the organ lies outside it: a labelling error that
`medsight check` reports by case, since a region-trained network (organ = organ + lesion) would learn it as
organ tissue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

LESION_WORDS = ("cancer", "tumour", "tumor", "lesion", "metasta", "nodule", "cyst")


def nested_pair(labels: dict[int, str]) -> tuple[int, int] | None:
    """(organ value, lesion value) when the labels are one organ and one lesion, else None."""
    foreground = {int(k): str(v).lower() for k, v in labels.items() if int(k) != 0}
    if len(foreground) != 2:
        return None
    lesions = [k for k, name in foreground.items() if any(w in name for w in LESION_WORDS)]
    if len(lesions) != 1:
        return None
    organ = next(k for k in foreground if k != lesions[0])
    return organ, lesions[0]


def lesions_outside(label: np.ndarray, organ: int, lesion: int) -> list[int]:
    """Voxel counts of the lesion components that touch no organ voxel (face, edge or corner neighbours)."""
    from scipy import ndimage

    structure = np.ones((3,) * label.ndim, bool)
    parts, count = ndimage.label(label == lesion, structure=structure)
    if count == 0:
        return []
    touching = ndimage.binary_dilation(label == organ, structure=structure)
    sizes = np.bincount(parts.ravel(), minlength=count + 1)
    touched = np.unique(parts[touching & (parts > 0)])
    return [int(sizes[k]) for k in range(1, count + 1) if k not in set(touched.tolist())]


def region_plan(labels: dict[int, str]) -> list[dict[str, Any]] | None:
    """nnU-Net-style regions for a nested pair: the organ with its lesions, then the lesions."""
    pair = nested_pair(labels)
    if pair is None:
        return None
    organ, lesion = pair
    return [{"name": labels[organ], "labels": [organ, lesion]}, {"name": labels[lesion], "labels": [lesion]}]
