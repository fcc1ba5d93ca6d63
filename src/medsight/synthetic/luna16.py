"""A synthetic LUNA16-layout set: chest-like CT (HU, int16 .mhd/.raw) with nodules and vessel-like tubes.

Scans have anisotropic spacing and a non-zero origin that differs per scan, so a reader that ignores the
geometry puts every nodule in the wrong place. Lung parenchyma (about -850 HU) sits inside a soft-tissue
body; vessels are tubes of 1-3 mm radius at soft-tissue density (the distractor: a nodule is a blob, a
vessel a line); nodules are spheres of 3-30 mm. Everything is drawn in local boxes, so a 512x512x300 scan
costs little more than its noise. Nodules go to annotations.csv in world mm; candidates.csv lists the
nodules (class 1) and points on vessels (class 0), as LUNA16's candidates do.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

LUNG_HU, TISSUE_HU, AIR_HU = -850.0, 40.0, -1000.0


def _stamp_sphere(volume: np.ndarray, centre_vox: np.ndarray, radius_mm: float, spacing_zyx: np.ndarray,
                  value: float) -> None:
    """Raise voxels within radius_mm of centre (continuous array coordinates) to value, smooth at the edge."""
    half = np.ceil(radius_mm / spacing_zyx + 1).astype(int)
    low = np.maximum(np.floor(centre_vox).astype(int) - half, 0)
    high = np.minimum(np.floor(centre_vox).astype(int) + half + 1, volume.shape)
    if np.any(high <= low):
        return
    axes = [(np.arange(lo, hi) + 0.5 - c) * s for lo, hi, c, s in zip(low, high, centre_vox, spacing_zyx)]
    distance = np.sqrt(axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2)
    weight = np.clip(radius_mm + 0.5 - distance, 0, 1)  # partial volume over about a millimetre
    region = volume[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    np.maximum(region, region + weight * (value - region), out=region)


def _tube(volume: np.ndarray, spacing: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """A gently curved vessel across the scan; returns a few points on it (array coordinates)."""
    shape = np.asarray(volume.shape, float)
    start, end = rng.uniform(0, shape), rng.uniform(0, shape)
    bend = rng.normal(0, 0.15, 3) * shape
    radius = float(rng.uniform(1.0, 3.0))
    length_mm = float(np.linalg.norm((end - start) * spacing))
    steps = max(2, int(length_mm / max(radius * 0.7, 0.5)))
    points = []
    for t in np.linspace(0, 1, steps):
        point = start + t * (end - start) + 4 * t * (1 - t) * bend
        _stamp_sphere(volume, point, radius, spacing, TISSUE_HU)
        points.append(point)
    return [points[i] for i in np.linspace(0, len(points) - 1, 3).astype(int)]


def make_scan(shape: tuple[int, int, int], spacing_xyz: tuple[float, float, float], rng: np.random.Generator,
              nodules: int, tubes: int, diameters_mm: tuple[float, float]):
    """(int16 volume (z, y, x), nodules [(centre array coordinates, diameter mm)], vessel points)."""
    spacing = np.asarray(spacing_xyz[::-1], float)
    z, y, x = shape
    volume = np.full(shape, AIR_HU, dtype=np.float32)
    yy, xx = np.ogrid[:y, :x]
    body = ((yy - y / 2) / (0.46 * y)) ** 2 + ((xx - x / 2) / (0.48 * x)) ** 2 <= 1
    lungs = (((yy - y / 2) / (0.36 * y)) ** 2 + ((np.abs(xx - x / 2) - 0.22 * x) / (0.2 * x)) ** 2) <= 1
    plane = np.where(body, TISSUE_HU, AIR_HU).astype(np.float32)
    plane[lungs & body] = LUNG_HU
    volume[:] = plane
    vessel_points = []
    for _ in range(tubes):
        vessel_points += _tube(volume, spacing, rng)
    volume[:, ~(lungs & body)] = plane[~(lungs & body)]  # vessels stay inside the lungs
    found = []
    inside = np.argwhere(lungs & body)
    for _ in range(nodules):
        diameter = float(np.exp(rng.uniform(np.log(diameters_mm[0]), np.log(diameters_mm[1]))))
        radius_vox = diameter / 2 / spacing
        for _ in range(50):
            yx = inside[int(rng.integers(len(inside)))] + 0.5
            centre = np.array([rng.uniform(radius_vox[0], z - radius_vox[0]) if z > 2 * radius_vox[0] else z / 2, *yx])
            if all(np.linalg.norm((centre - c) * spacing) > (diameter + d) / 2 + 2 for c, d in found):
                break
        _stamp_sphere(volume, centre, diameter / 2, spacing, float(rng.uniform(-20, 80)))
        found.append((centre, diameter))
    volume += rng.normal(0, 25, shape).astype(np.float32)
    return np.clip(volume, -1024, 3071).astype(np.int16), found, vessel_points


def make_luna16(out: Path, seed: int = 0, num_scans: int = 12, shape: tuple[int, int, int] = (40, 96, 96),
                spacing_xyz: tuple[float, float, float] = (0.9, 0.9, 2.5), subsets: int = 2,
                diameters_mm: tuple[float, float] = (3.0, 30.0), tubes: int = 6, empty_every: int = 5) -> Path:
    """Write num_scans scans into subset0..subset{subsets-1}/<uid>.mhd with annotations.csv and candidates.csv.

    Every empty_every-th scan has no nodule (LUNA16 has such scans); the others have one to three.
    Spacing varies by up to 10% per scan around spacing_xyz, and each scan has its own origin.
    """
    import SimpleITK as sitk

    out = Path(out)
    rng = np.random.default_rng(seed)
    annotations, candidates = [], []
    for k in range(num_scans):
        uid = f"1.3.6.1.4.1.99999.{seed}.{k + 1:04d}"
        spacing = tuple(float(s * rng.uniform(0.9, 1.1)) for s in spacing_xyz)
        origin = (float(rng.uniform(-200, -150)), float(rng.uniform(-220, -160)), float(rng.uniform(-400, -100)))
        count = 0 if empty_every and k % empty_every == empty_every - 1 else int(rng.integers(1, 4))
        volume, nodules, vessel_points = make_scan(shape, spacing, rng, count, tubes, diameters_mm)
        image = sitk.GetImageFromArray(volume)
        image.SetSpacing(spacing)
        image.SetOrigin(origin)
        folder = out / f"subset{k % subsets}"
        folder.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(image, str(folder / f"{uid}.mhd"))

        def world(point: np.ndarray) -> list[float]:
            return [round(float(v), 3) for v in np.asarray(origin) + (point[::-1] - 0.5) * np.asarray(spacing)]

        for centre, diameter in nodules:
            annotations.append([uid, *world(centre), round(diameter, 3)])
            candidates.append([uid, *world(centre), 1])
        candidates += [[uid, *world(p), 0] for p in vessel_points]
    for name, header, rows in (("annotations.csv", ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"], annotations),
                               ("candidates.csv", ["seriesuid", "coordX", "coordY", "coordZ", "class"], candidates)):
        with open(out / name, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows(rows)
    return out
