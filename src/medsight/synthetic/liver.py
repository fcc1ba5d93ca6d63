"""A synthetic CT-like liver set in the MSD Task03 layout: an enhancing organ (HU) with hypodense lesions.

Labels as MSD Task03: 0 background, 1 liver, 2 cancer (a lesion is labelled 2, not 1, yet lies inside the
liver: nested labels). Volumes have anisotropic spacing (thick slices) and a non-zero origin. Lesions range
from a few voxels (2 mm across, one slice) to a few centimetres, so lesion-wise metrics by size have
something to say. ``outside`` puts one extra lesion in that many cases away from the liver, the kind of label
error `medsight check` reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

LIVER_HU, LESION_HU, TISSUE_HU, FAT_HU, AIR_HU = 110.0, 45.0, 40.0, -100.0, -1000.0


def _ellipsoid(shape, spacing_zyx, centre_mm, radii_mm) -> np.ndarray:
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing_zyx)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    c, r = centre_mm, radii_mm
    return ((zz - c[0]) / r[0]) ** 2 + ((yy - c[1]) / r[1]) ** 2 + ((xx - c[2]) / r[2]) ** 2 <= 1


def make_liver_case(shape, spacing_xyz, rng: np.random.Generator, lesions: int, outside: bool = False):
    """(int16 HU image, uint8 label, lesion diameters in mm) of one case (array order z, y, x)."""
    spacing = np.asarray(spacing_xyz[::-1], float)
    extent = np.asarray(shape) * spacing
    image = np.full(shape, AIR_HU, np.float32)
    body = _ellipsoid(shape, spacing, extent / 2, extent * np.array([0.8, 0.46, 0.48]))
    image[body] = FAT_HU
    image[_ellipsoid(shape, spacing, extent / 2, extent * np.array([0.8, 0.4, 0.42]))] = TISSUE_HU
    # the liver: an ellipsoid deformed by smooth noise, in one side of the body
    centre = extent * np.array([0.5, 0.47, 0.36]) + rng.normal(0, 0.02, 3) * extent
    radii = extent * np.array([0.35, 0.24, 0.22]) * rng.uniform(0.9, 1.1, 3)
    wobble = gaussian_filter(rng.normal(0, 1, shape), sigma=4) * 6
    axes = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    distance = np.sqrt(((zz - centre[0]) / radii[0]) ** 2 + ((yy - centre[1]) / radii[1]) ** 2
                       + ((xx - centre[2]) / radii[2]) ** 2)
    liver = (distance + wobble / np.max(radii) <= 1) & body
    label = np.zeros(shape, np.uint8)
    label[liver] = 1
    image[liver] = LIVER_HU
    inside = np.argwhere(liver & (distance <= 0.75))
    diameters = []
    for k in range(lesions + int(outside)):
        diameter = float(np.exp(rng.uniform(np.log(2.5), np.log(min(40.0, float(radii.min()))))))
        if k == lesions:  # the stray lesion: in the body, well away from the liver
            where = extent * np.array([0.5, 0.5, 0.78])
        else:
            where = (inside[int(rng.integers(len(inside)))] + 0.5) * spacing
        lesion = _ellipsoid(shape, spacing, where, np.full(3, max(diameter / 2, spacing.min())))
        if k < lesions:
            lesion &= liver
        if not lesion.any():  # smaller than a voxel where it fell: mark the voxel at its centre
            lesion[tuple(np.minimum((where / spacing).astype(int), np.asarray(shape) - 1))] = True
        label[lesion & (label != 2)] = 2
        image[lesion] = LESION_HU
        diameters.append(diameter)
    image = gaussian_filter(image, 0.7) + rng.normal(0, 12, shape)
    return np.clip(image, -1024, 3071).astype(np.int16), label, diameters


def make_liver(out: Path, seed: int = 0, num_cases: int = 10, shape=(24, 64, 64), spacing_xyz=(1.2, 1.2, 4.0),
               outside: int = 0) -> Path:
    """Write dataset.json (MSD: modality, labels, training list), imagesTr/liver_<k>.nii.gz and labelsTr/."""
    import SimpleITK as sitk

    out = Path(out)
    rng = np.random.default_rng(seed)
    for folder in ("imagesTr", "labelsTr"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    training = []
    for k in range(num_cases):
        image, label, _ = make_liver_case(shape, spacing_xyz, rng, int(rng.integers(1, 5)), outside=k < outside)
        origin = (float(rng.uniform(-250, -150)), float(rng.uniform(-250, -150)), float(rng.uniform(-600, -300)))
        for array, folder in ((image, "imagesTr"), (label, "labelsTr")):
            itk = sitk.GetImageFromArray(array)
            itk.SetSpacing(tuple(float(s) for s in spacing_xyz))
            itk.SetOrigin(origin)
            sitk.WriteImage(itk, str(out / folder / f"liver_{k}.nii.gz"), True)
        training.append({"image": f"./imagesTr/liver_{k}.nii.gz", "label": f"./labelsTr/liver_{k}.nii.gz"})
    meta = {"name": "LiverSynthetic", "description": "medsight synthetic CT-like liver with lesions (MSD Task03 layout)",
            "tensorImageSize": "3D", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver", "2": "cancer"},
            "numTraining": num_cases, "numTest": 0, "training": training, "test": []}
    (out / "dataset.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return out
