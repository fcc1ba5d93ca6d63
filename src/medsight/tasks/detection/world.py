"""3D detection in world units: scans resampled to the plan's target spacing, cached on disk, scored in mm.

A plan with ``target_spacing`` (made for scans whose geometry is known, such as LUNA16's) puts every scan on
one grid of millimetres, so a 10 mm nodule has the same size in voxels whatever the scanner, and the anchors
are fixed in mm. The resampled, normalised scans are written once by the volume cache
(``medsight.data.volume_cache``, images only, built slab by slab: ``world_cache.py``) and read memory-mapped: training cuts patches from the files and
prediction slides its windows over them, so memory does not grow with the number or size of the scans.
Boxes go back to each scan's own voxels (and from there to world mm) by the exact ratio of the grids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np
import torch

from medsight.data.volumes import preprocess, resampled_shape
from medsight.tasks.detection.world_cache import StreamedCache

MIN_BOX_VOXELS = 8.0  # the grid may be coarser than the scans' median spacing while the small boxes keep this size
SAMPLE_VALUES = 20_000  # voxels per scan for the intensity statistics (a 512x512x300 scan is never held twice)


def cache_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """What the volume cache needs to resample and normalise a scan as this detection plan says."""
    norm = plan["normalization"]
    schemes = [{"scheme": "ct", "clip": list(norm["clip"]), "mean": m, "std": s} for m, s in zip(norm["mean"], norm["std"])]
    return {"task": "segmentation", "target_spacing": list(plan["target_spacing"]), "normalization": schemes,
            "labels": {"0": "background"}}


def grid_ratio(shape: Sequence[int], plan: dict[str, Any], spacing: Sequence[float]) -> np.ndarray:
    """Resampled / original shape per array axis: a continuous coordinate c becomes c * ratio."""
    new = resampled_shape(shape, spacing, plan["target_spacing"])
    return np.asarray(new, float) / np.asarray(shape, float)


def scale_boxes(boxes: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, float) * np.concatenate([ratio, ratio])


class CacheView:
    """A detection data set as the volume cache reads it: image and spacing per case, no label."""

    def __init__(self, dataset: Any):
        self.dataset, self.path, self.case_ids = dataset, dataset.path, dataset.case_ids

    def cache_files(self) -> list[Path]:
        files = [Path(f) for case in self.dataset.sources for f in case]
        return files + [f.with_suffix(".raw") for f in files if f.suffix == ".mhd"]

    def load_case(self, index: int) -> SimpleNamespace:
        return SimpleNamespace(case_id=self.dataset.case_ids[index], image=self.dataset.load_case(index), label=None,
                               spacing=self.dataset.geometries[index].array_spacing)


@dataclass
class WorldCase:
    """A cached training case: the image stays on disk (opened memory-mapped for each patch)."""

    path: Path
    boxes: np.ndarray  # on the target grid
    labels: np.ndarray
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))

    @property
    def image(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


class WorldCases:
    """The cache of a data set under a world-unit plan, with the boxes moved onto its grid."""

    def __init__(self, dataset: Any, plan: dict[str, Any], root: Path | None = None):
        self.dataset, self.plan = dataset, plan
        self.cache = StreamedCache(CacheView(dataset), cache_plan(plan), root)  # built slab by slab

    def ratio(self, index: int) -> np.ndarray:
        geometry = self.dataset.geometries[index]
        return grid_ratio(geometry.shape, self.plan, geometry.array_spacing)

    def case(self, index: int) -> WorldCase:
        self.cache.ensure([index])
        ratio = self.ratio(index)
        negatives = self.dataset.hard_negatives[index] if self.dataset.hard_negatives else np.zeros((0, 3))
        return WorldCase(self.cache.paths(self.dataset.case_ids[index])[0], scale_boxes(self.dataset.boxes[index], ratio),
                         self.dataset.labels[index], np.asarray(negatives, float) * ratio)


def prepare_world(raw: np.ndarray, spacing: Sequence[float], plan: dict[str, Any]) -> tuple[torch.Tensor, np.ndarray]:
    """A raw (C, z, y, x) scan with its array-order spacing -> (network input on the target grid, grid ratio)."""
    image, _ = preprocess(raw[: plan["in_channels"]], spacing, cache_plan(plan))
    return image, np.asarray(image.shape[1:], float) / np.asarray(raw.shape[1:], float)


# planning -------------------------------------------------------------------------------------------------------
def plan_grid(dataset: Any, train: np.ndarray) -> dict[str, Any]:
    """Target spacing, resampled shapes and box sizes (in mm and in target voxels) of the training scans."""
    from medsight.tasks.segmentation.plan import target_spacing

    spacings = np.array([dataset.geometries[i].array_spacing for i in train], float)
    shapes = np.array([dataset.shapes[i] for i in train], float)
    sizes_mm = [(b[:, 3:] - b[:, :3]) * s for b, s in zip((dataset.boxes[i] for i in train), spacings) if len(b)]
    sizes_mm = np.concatenate(sizes_mm) if sizes_mm else np.full((1, 3), 16.0)
    target = np.asarray(target_spacing(spacings, shapes), float)
    smallest = float(np.percentile(np.exp(np.log(np.maximum(sizes_mm, 1e-3)).mean(1)), 5))
    target = np.maximum(target, smallest / MIN_BOX_VOXELS)  # coarser where even the small boxes stay large
    return {"target_spacing": [round(float(t), 4) for t in target], "sizes": sizes_mm / target, "sizes_mm": sizes_mm,
            "shapes": shapes * spacings / target, "median_spacing": [float(v) for v in np.median(spacings, axis=0)]}


def sampled_intensities(dataset: Any, indices: Sequence[int]) -> tuple[list[float], list[float], tuple[float, float]]:
    """Clip range (0.5-99.5 percentiles) and clipped mean/std per channel from a sample of voxels per scan."""
    samples = []
    for i in indices:
        image = dataset.load_case(int(i))
        step = max(1, image[0].size // SAMPLE_VALUES)
        samples.append(np.stack([np.asarray(c, np.float32).ravel()[::step] for c in image]))
        del image
    channels = min(s.shape[0] for s in samples)
    values = np.concatenate([s[:channels] for s in samples], axis=1)
    low, high = np.percentile(values, [0.5, 99.5])
    high = high if high > low else low + 1.0
    clipped = np.clip(values, low, high)
    return [float(v) for v in clipped.mean(1)], [float(max(v, 1e-6)) for v in clipped.std(1)], (float(low), float(high))


# scoring --------------------------------------------------------------------------------------------------------
def centres_mm(boxes: np.ndarray, geometry: Any) -> np.ndarray:
    boxes = np.asarray(boxes, float).reshape(-1, 6)
    return geometry.to_world((boxes[:, :3] + boxes[:, 3:]) / 2)


def references_mm(dataset: Any, index: int) -> list[dict[str, Any]]:
    """LUNA16 references of a case: centre in mm and diameter (given, or the box's mean extent in mm)."""
    geometry = dataset.geometries[index]
    boxes = dataset.boxes[index]
    given = dataset.diameters[index] if dataset.diameters else None
    extents = (boxes[:, 3:] - boxes[:, :3]) * np.asarray(geometry.array_spacing)
    diameters = given if given is not None and len(given) == len(boxes) else extents.mean(1)
    return [{"case": dataset.case_ids[index], "centre_mm": tuple(c), "diameter_mm": float(d)}
            for c, d in zip(centres_mm(boxes, geometry), diameters)]


def luna16_scores(dataset: Any, indices: Sequence[int], predictions: Sequence[dict[str, np.ndarray]]) -> dict[str, Any]:
    """froc_luna16 over the cases: a prediction hits when its centre is within a nodule's radius."""
    from medsight.metrics.froc import froc_luna16

    found, references = [], []
    for index, pred in zip(indices, predictions):
        geometry = dataset.geometries[int(index)]
        references += references_mm(dataset, int(index))
        found += [{"case": dataset.case_ids[int(index)], "centre_mm": tuple(c), "score": float(s)}
                  for c, s in zip(centres_mm(pred["boxes"], geometry), pred["scores"])]
    return froc_luna16(found, references, n_scans=len(indices))


def write_submission(path: Path, records: Sequence[dict[str, Any]]) -> Path:
    """LUNA16's submission CSV (seriesuid,coordX,coordY,coordZ,probability) from 3D records with world boxes."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "probability"])
        for r in records:
            if "bbox_world" in r:
                writer.writerow([r["image_id"], *r["bbox_world"]["center"], r["score"]])
    return path
