"""Synthetic detection sets: 2D blobs (COCO) and 3D spheres in noisy volumes ("nodules", nnDetection raw)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.ndimage import gaussian_filter

CLASSES_2D = ("disc", "ring")


def _background(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    tissue = gaussian_filter(rng.normal(0, 1, shape), sigma=max(shape) / 12)
    return 0.35 + 0.15 * tissue / (np.abs(tissue).max() + 1e-6)


def _place(centres: list[np.ndarray], radii: list[float], shape: tuple[int, ...], radius: float,
           rng: np.random.Generator) -> np.ndarray | None:
    """A centre that keeps the object inside the image and apart from the others (or None)."""
    for _ in range(50):
        centre = rng.uniform(radius + 1, np.array(shape) - radius - 1)
        if all(np.linalg.norm(centre - c) > radius + r + 2 for c, r in zip(centres, radii)):
            return centre
    return None


def make_blobs_2d(out: Path, seed: int, num_images: int = 72, size: int = 96, radius: tuple[float, float] = (5.0, 11.0),
                  contrast: tuple[float, float] = (0.25, 0.45), classes: Sequence[str] = CLASSES_2D,
                  per_image: tuple[int, int] = (1, 4)) -> Path:
    """COCO folder: grey PNGs with 1-4 bright discs or rings (radius 5-11 px) and annotations.json.

    radius, contrast, per_image: ranges of the objects' radius (px), brightness above the tissue and count;
    classes: ("disc",) for discs alone, ("disc", "ring") for both."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    grid = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1) + 0.5
    images, annotations = [], []
    splits = ["train"] * int(num_images * 0.6) + ["val"] * int(num_images * 0.2)
    splits += ["test"] * (num_images - len(splits))
    for i in range(num_images):
        image = _background((size, size), rng)
        centres, radii = [], []
        for _ in range(int(rng.integers(per_image[0], per_image[1] + 1))):
            r = float(rng.uniform(*radius))
            centre = _place(centres, radii, (size, size), r, rng)
            if centre is None:
                continue
            label = int(rng.integers(0, len(classes)))
            distance = np.sqrt(((grid - centre) ** 2).sum(-1))
            inside = distance <= r
            if label == 1:
                inside &= distance >= r * 0.55
            image = np.where(inside, image + rng.uniform(*contrast), image)
            rows, cols = np.where(inside)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label + 1, "iscrowd": 0,
                                "bbox": [int(cols.min()), int(rows.min()), int(cols.max() - cols.min() + 1),
                                         int(rows.max() - rows.min() + 1)],
                                "area": int(inside.sum())})
            centres.append(centre)
            radii.append(r)
        image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1)
        name = f"blob_{i:03d}.png"
        Image.fromarray((image * 255).astype(np.uint8)).save(out / "images" / name)
        images.append({"id": i, "file_name": name, "width": size, "height": size, "split": splits[i]})
    categories = [{"id": k + 1, "name": n} for k, n in enumerate(classes)]
    (out / "annotations.json").write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}), encoding="utf-8")
    return out


def make_spheres_3d(out: Path, seed: int, num_cases: int = 30, size: int = 48, radius: tuple[float, float] = (3.0, 7.0),
                    per_case: tuple[int, int] = (1, 3), contrast: tuple[float, float] = (0.25, 0.5),
                    noise: float = 0.06, test_fraction: float = 0.2) -> Path:
    """nnDetection raw: imagesTr/labelsTr (+ Ts) NIfTI volumes with bright spheres and instance masks + JSON."""
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    for sub in ("imagesTr", "labelsTr", "imagesTs", "labelsTs"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    shape = (size,) * 3
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1) + 0.5
    num_test = int(round(num_cases * test_fraction))
    for i in range(num_cases):
        split = "Ts" if i >= num_cases - num_test else "Tr"
        volume = _background(shape, rng)
        mask = np.zeros(shape, dtype=np.uint8)
        centres, radii, instances = [], [], {}
        for _ in range(int(rng.integers(per_case[0], per_case[1] + 1))):
            r = float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))  # more small ones, as in LUNA16
            centre = _place(centres, radii, shape, r, rng)
            if centre is None:
                continue
            distance = np.sqrt(((grid - centre) ** 2).sum(-1))
            volume = volume + rng.uniform(*contrast) / (1 + np.exp((distance - r) * 2.0))  # soft-edged sphere
            instance = len(instances) + 1
            mask[(distance <= r) & (mask == 0)] = instance
            if (mask == instance).any():
                instances[str(instance)] = 0
            centres.append(centre)
            radii.append(r)
        volume = volume + rng.normal(0, noise, shape)
        case = f"nodule_{i:03d}"
        for array, path in ((volume.astype(np.float32) * 1000 - 500, out / f"images{split}" / f"{case}_0000.nii.gz"),
                            (mask, out / f"labels{split}" / f"{case}.nii.gz")):
            image = sitk.GetImageFromArray(array)
            image.SetSpacing((1.0, 1.0, 1.0))
            sitk.WriteImage(image, str(path))
        (out / f"labels{split}" / f"{case}.json").write_text(json.dumps({"instances": instances}), encoding="utf-8")
    (out / "dataset.json").write_text(json.dumps({"name": "synthetic nodules", "labels": {"0": "nodule"},
                                                  "modality": {"0": "CT"}, "dim": 3}), encoding="utf-8")
    return out


def make_detection_dataset(out: Path, spatial_dims: int, seed: int) -> Path:
    """The demo's data: 2D blobs as COCO, or 3D spheres as nnDetection raw; returns the folder."""
    out = Path(out)
    if (out / "annotations.json").is_file() or (out / "dataset.json").is_file():
        return out  # already made (the demo may be re-run)
    return make_blobs_2d(out, seed) if spatial_dims == 2 else make_spheres_3d(out, seed)
