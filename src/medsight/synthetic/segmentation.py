"""Synthetic 2D/3D segmentation sets in nnU-Net raw layout: a bright ellipse ('blob') and a dimmer box ('box')
on smooth noisy tissue. 2D cases are PNG, 3D cases NIfTI with a non-trivial spacing and origin."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

LABELS = {"background": 0, "blob": 1, "box": 2}
SIZE = {2: 64, 3: 32}
SPACING_3D = (0.9, 0.9, 1.2)  # x, y, z in mm
TEST_FRACTION = 0.25


def make_case(spatial_dims: int, size: int, rng: np.random.Generator, object_scale: float = 1.0,
              contrast: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image, uint8 label) of shape (size,) * spatial_dims; object_scale and contrast multiply the
    objects' extents and their brightness above the tissue (1: the default set)."""
    shape = (size,) * spatial_dims
    grid = np.stack(np.meshgrid(*[np.arange(size)] * spatial_dims, indexing="ij"), -1).astype(np.float32)
    label = np.zeros(shape, np.uint8)
    # the box first, so an overlapping blob wins (the blob is the more specific structure)
    half = rng.uniform(0.1, 0.2, spatial_dims) * size * object_scale
    corner = rng.uniform(half, size - half)
    label[np.all(np.abs(grid - corner) < half, axis=-1)] = 2
    radii = rng.uniform(0.1, 0.22, spatial_dims) * size * object_scale
    centre = rng.uniform(radii, size - radii)
    label[(((grid - centre) / radii) ** 2).sum(-1) < 1] = 1
    tissue = gaussian_filter(rng.normal(0, 1, shape), sigma=size / 12)
    image = 0.3 + 0.1 * tissue / (np.abs(tissue).max() + 1e-6)
    image = image + contrast * (np.where(label == 1, 0.35, 0.0) + np.where(label == 2, 0.18, 0.0))
    image = gaussian_filter(image, 0.6) + rng.normal(0, 0.06, shape)
    return np.clip(image * 255, 0, 255).astype(np.uint8), label


def _write(array: np.ndarray, path: Path, spatial_dims: int, origin: tuple[float, ...]) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    if spatial_dims == 3:
        image.SetSpacing(SPACING_3D)
        image.SetOrigin(origin)
    sitk.WriteImage(image, str(path), True)


def make_segmentation_dataset(out: Path, spatial_dims: int = 2, num_cases: int = 40, seed: int = 0,
                              size: int | None = None, object_scale: float = 1.0, contrast: float = 1.0) -> Path:
    """Write an nnU-Net raw folder (dataset.json, imagesTr/labelsTr, imagesTs/labelsTs) and return it.

    object_scale, contrast: larger, brighter objects than the default set (see make_case)."""
    out = Path(out)
    rng = np.random.default_rng(seed)
    size = size or SIZE[spatial_dims]
    ending = ".png" if spatial_dims == 2 else ".nii.gz"
    num_test = max(1, int(round(num_cases * TEST_FRACTION)))
    for folder in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for k in range(num_cases):
        image, label = make_case(spatial_dims, size, rng, object_scale, contrast)
        part = "Ts" if k >= num_cases - num_test else "Tr"
        case = f"shapes_{k:03d}"
        origin = tuple(float(v) for v in rng.uniform(-50, 50, 3))
        _write(image, out / f"images{part}" / f"{case}_0000{ending}", spatial_dims, origin)
        _write(label, out / f"labels{part}" / f"{case}{ending}", spatial_dims, origin)
    meta = {"name": f"synthetic_shapes_{spatial_dims}d", "channel_names": {"0": "MRI"}, "labels": LABELS,
            "numTraining": num_cases - num_test, "file_ending": ending,
            "description": "medsight synthetic shapes: a bright ellipse (blob) and a dimmer box on noisy tissue"}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out
