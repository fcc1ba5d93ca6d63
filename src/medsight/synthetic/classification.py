"""A synthetic lesion-detection classification set: smooth 'tissue' with or without a faint bright lesion."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

CLASSES = ("normal", "lesion")


def make_images(count: int, spatial_dims: int, size: int, rng: np.random.Generator,
                lesion_fraction: float, contrast: tuple[float, float] = (0.05, 0.3),
                radius: tuple[float, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (count, *[size]*dims) and labels (count,); lesion contrast varies so some are hard
    (a contrast range well above the noise, e.g. (0.5, 0.7), makes the classes trivially separable)."""
    labels = (rng.random(count) < lesion_fraction).astype(np.int64)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * spatial_dims, indexing="ij"), -1).astype(np.float32)
    images = np.empty((count,) + (size,) * spatial_dims, dtype=np.uint8)
    for i in range(count):
        tissue = gaussian_filter(rng.normal(0, 1, (size,) * spatial_dims), sigma=size / 10)
        image = 0.45 + 0.25 * tissue / (np.abs(tissue).max() + 1e-6)
        # an organ-like ellipse so that both classes share large-scale structure
        centre = size / 2 + rng.normal(0, size / 16, spatial_dims)
        radii = size * rng.uniform(0.28, 0.38, spatial_dims)
        inside = (((grid - centre) / radii) ** 2).sum(-1) < 1
        image = np.where(inside, image + 0.12, image * 0.6)
        if labels[i]:
            spot = centre + rng.uniform(-0.5, 0.5, spatial_dims) * radii
            sigma = rng.uniform(*(radius or (1.5, size / 8)))
            image = image + rng.uniform(*contrast) * np.exp(-(((grid - spot) ** 2).sum(-1)) / (2 * sigma**2))
        image = image + rng.normal(0, 0.06, image.shape)
        images[i] = np.clip(image * 255, 0, 255).astype(np.uint8)
    return images, labels


def make_classification_npz(path: str | Path, spatial_dims: int = 2, size: int = 28, n_train: int = 600,
                            n_val: int = 150, n_test: int = 200, lesion_fraction: float = 0.3,
                            seed: int = 0, contrast: tuple[float, float] = (0.05, 0.3),
                            radius: tuple[float, float] | None = None) -> Path:
    """Write a MedMNIST-style .npz (train/val/test images and (N,1) labels) and return its path."""
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        images, labels = make_images(count, spatial_dims, size, rng, lesion_fraction, contrast, radius)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez_compressed(path, label_names=np.array(CLASSES), **arrays)
    return path
