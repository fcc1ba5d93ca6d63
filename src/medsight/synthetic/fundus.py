"""A synthetic fundus-photograph set: colour retina images, half of them with lesion-like spots.

Each image is an orange-red disc of retina in a black field of view, darker towards its rim (vignetting),
with a bright yellowish optic disc, dark-red vessels that branch out of it, and a darker fovea. A "lesion"
image also carries a few bright yellow exudate-like spots and dark-red haemorrhage-like blots, a few pixels
wide, as a diabetic-retinopathy screening photograph would. Written as an image folder
(``train|val|test/<class>/*.png``), so it trains as any user's photographs do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

CLASSES = ("none", "lesion")
RETINA_RGB = np.array([0.78, 0.36, 0.16])
DISC_RGB = np.array([0.98, 0.86, 0.55])
VESSEL_RGB = np.array([0.45, 0.08, 0.05])
EXUDATE_RGB = np.array([1.0, 0.93, 0.45])
HAEMORRHAGE_RGB = np.array([0.38, 0.05, 0.03])


def _blend(image: np.ndarray, weight: np.ndarray, colour: np.ndarray) -> None:
    """Paint colour over image (H, W, 3) in place, with a per-pixel weight in 0..1."""
    image += weight[..., None] * (colour - image)


def _vessels(size: int, disc: np.ndarray, rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A weight map of curved vessels that leave the optic disc in all directions."""
    weight = np.zeros((size, size))
    for angle in rng.uniform(0, 2 * np.pi, 8):
        bend = rng.normal(0, 0.6)
        width = size * rng.uniform(0.006, 0.014)
        for t in np.linspace(0.05, 0.75, 60):
            a = angle + bend * t
            point = disc + size * t * np.array([np.sin(a), np.cos(a)])
            weight = np.maximum(weight, np.exp(-((yy - point[0]) ** 2 + (xx - point[1]) ** 2) / (2 * width ** 2)))
    return weight * 0.8


def make_fundus_image(size: int, lesion: bool, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 photograph."""
    yy, xx = np.mgrid[:size, :size].astype(float) + 0.5
    centre = size / 2 + rng.normal(0, size * 0.01, 2)
    rim = np.hypot(yy - centre[0], xx - centre[1]) / (size * 0.47)
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), size / 40)
    image = RETINA_RGB * (1.0 - 0.35 * rim[..., None] ** 2) + 0.04 * texture[..., None] / (np.abs(texture).max() + 1e-6)
    side = rng.choice([-1, 1])  # left or right eye: the disc sits to one side of the fovea
    disc = centre + np.array([rng.normal(0, size * 0.03), side * size * rng.uniform(0.2, 0.26)])
    fovea = centre + np.array([rng.normal(0, size * 0.02), -side * size * 0.05])
    _blend(image, 0.35 * np.exp(-((yy - fovea[0]) ** 2 + (xx - fovea[1]) ** 2) / (2 * (size * 0.06) ** 2)), VESSEL_RGB)
    _blend(image, _vessels(size, disc, rng, yy, xx), VESSEL_RGB)
    disc_radius = size * rng.uniform(0.07, 0.09)
    _blend(image, np.clip(disc_radius - np.hypot(yy - disc[0], xx - disc[1]) + 0.5, 0, 1), DISC_RGB)
    if lesion:
        for _ in range(int(rng.integers(3, 8))):
            # spots anywhere on the retina but the disc, mostly around the macula as in diabetic retinopathy
            for _ in range(20):
                spot = fovea + rng.normal(0, size * 0.16, 2)
                if np.hypot(*(spot - centre)) < size * 0.42 and np.hypot(*(spot - disc)) > disc_radius + 3:
                    break
            radius = size * rng.uniform(0.018, 0.035)
            weight = np.exp(-((yy - spot[0]) ** 2 + (xx - spot[1]) ** 2) / (2 * radius ** 2))
            _blend(image, np.clip(1.6 * weight, 0, 1), EXUDATE_RGB if rng.random() < 0.5 else HAEMORRHAGE_RGB)
    image = image * (1 + rng.normal(0, 0.06)) + rng.normal(0, 0.02, image.shape)  # exposure and sensor noise
    image[rim > 1] = 0.0  # the black surround outside the camera's field of view
    return np.clip(image * 255, 0, 255).astype(np.uint8)


def make_fundus_folder(out: str | Path, size: int = 64, n_train: int = 320, n_val: int = 80, n_test: int = 120,
                       lesion_fraction: float = 0.5, seed: int = 0) -> Path:
    """Write ``out/<split>/<none|lesion>/fundus_NNNN.png`` and return out (kept if already made)."""
    from PIL import Image

    out = Path(out)
    if (out / "test").is_dir():
        return out  # already made (the demo may be re-run)
    rng = np.random.default_rng(seed)
    number = 0
    for split, count in (("train", n_train), ("val", n_val), ("test", n_test)):
        for label in (rng.random(count) < lesion_fraction).astype(int):
            folder = out / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(make_fundus_image(size, bool(label), rng)).save(folder / f"fundus_{number:04d}.png")
            number += 1
    return out
