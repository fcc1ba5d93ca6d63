"""The detection plan: scale, patch size, normalisation and anchors from the training boxes (as nnDetection)."""

from __future__ import annotations

from typing import Any

import numpy as np

from medsight.data.preprocess import intensity_range
from medsight.tasks.detection.cache import training_boxes
from medsight.tasks.detection.tiling import choose_scale, choose_scale_and_tiles, read_case_near_scale
from medsight.tasks.detection.world import plan_grid, sampled_intensities

MAX_PATCH_3D = 64  # 2D scale and tiles: medsight.tasks.detection.tiling
# Prediction slides windows of this side over a 3D scan (infer.prediction_window): a 300 x 512 x 512 CT is
# predicted 3.1-3.4x faster than in 48 x 64 x 64 patch windows (benchmarks/detection/inference_window.py)
INFERENCE_WINDOW_3D = 192
LEVELS = 4  # FPN levels: strides s, 2s, 4s, 8s


def box_sizes(boxes: list[np.ndarray], dims: int) -> np.ndarray:
    found = [b for b in boxes if len(b)]
    if not found:
        return np.ones((1, dims)) * 16
    b = np.concatenate(found)
    return b[:, dims:] - b[:, :dims]


def plan_anchors(sizes: np.ndarray, stride: int) -> dict[str, Any]:
    """Anchor shapes at the finest level from the box statistics; level i uses them times 2**i.

    The base size is the 5th percentile of the boxes' geometric-mean size (never below the finest stride),
    three octave steps per level, and one to three aspect ratios (the 20/50/80% quantiles when the boxes'
    shapes spread, else the median shape).
    """
    geo = np.exp(np.log(np.maximum(sizes, 1e-3)).mean(1))
    base = max(float(np.percentile(geo, 5)), float(stride))
    ratios = sizes / geo[:, None]  # per-axis shape relative to the geometric mean
    log_ratio = np.log(ratios[:, 0] / ratios[:, 1])
    if np.percentile(log_ratio, 80) - np.percentile(log_ratio, 20) > 0.4:
        quantiles = [20, 50, 80]
        shapes = []
        for q in quantiles:
            target = np.percentile(log_ratio, q)
            pick = np.argsort(np.abs(log_ratio - target))[: max(1, len(log_ratio) // 10)]
            shapes.append(np.exp(np.log(ratios[pick]).mean(0)))
    else:
        shapes = [np.exp(np.log(ratios).mean(0))]
    anchors = []
    for shape in shapes:
        shape = shape / np.exp(np.log(shape).mean())  # keep the geometric mean at 1
        for octave in (0.0, 1 / 3, 2 / 3):
            anchors.append([round(float(v), 1) for v in base * 2**octave * shape])
    return {"anchor_shapes": anchors, "feature_map_scales": [2**i for i in range(LEVELS)],
            "box_size_percentiles": {str(q): [float(v) for v in np.percentile(sizes, q, axis=0)] for q in (5, 50, 95)}}


# Boxes whose sizes spread this much (90th over 10th percentile of the geometric-mean side) are drawn by size
# (data.positive_draws): on the synthetic LUNA16 set of 3-30 mm nodules (spread 3.95) that raised validation CPM
# from 0.75 to 0.84 at 2,000 steps, where drawing a scan first kept its best epoch at 14 of 50
# (benchmarks/detection/results.md). A set of one size range (the 3D learning test's spheres, spread under 2)
# lost mAP with it, so such sets keep the scan-first draw.
SIZE_SPREAD_FOR_SIZE_DRAW = 3.0


def size_draw_power(sizes_mm: np.ndarray) -> float | None:
    """positive_size_power for world-unit 3D plans: 1.0 when lesion sizes span a wide range, else None."""
    if len(sizes_mm) < 2:
        return None
    geo = np.exp(np.log(np.maximum(np.asarray(sizes_mm, float), 1e-3)).mean(1))
    return 1.0 if np.percentile(geo, 90) / np.percentile(geo, 10) >= SIZE_SPREAD_FOR_SIZE_DRAW else None


def round_up(value: float, divisor: int) -> int:
    return int(np.ceil(value / divisor) * divisor)


def thinned(image: np.ndarray, most: int = 1 << 20) -> np.ndarray:
    """Every k-th pixel of an image along each spatial axis, so at most about ``most`` are kept (statistics)."""
    step = int(np.ceil((image[0].size / most) ** (1 / (image.ndim - 1)))) if image[0].size > most else 1
    return image[(slice(None),) + (slice(None, None, step),) * (image.ndim - 1)]


def make_detection_plan(dataset: Any) -> dict[str, Any]:
    """Fingerprint the training set and choose everything the network and its batches need."""
    dims = dataset.spatial_dims
    train = dataset.splits["train"]
    # 3D scans with a known geometry are planned on one grid of millimetres (tasks/detection/world.py)
    grid = plan_grid(dataset, train) if dims == 3 and getattr(dataset, "geometries", None) else None
    shapes = grid["shapes"] if grid else np.array([dataset.shapes[i] for i in train], dtype=float)
    median = np.median(shapes, axis=0)
    # anchors fit the boxes trained on: a crowd box (over many objects) is no size to look for
    sizes = grid["sizes"] if grid else box_sizes([training_boxes(dataset, int(i))[0] for i in train], dims)
    small = float(np.percentile(np.exp(np.log(np.maximum(sizes, 1e-3)).mean(1)), 10))
    # 2D: the median box kept large enough, the image tiled when it is then larger than one input
    scale = choose_scale(median, sizes) if dims == 2 else 1.0
    source_sizes, sizes = sizes, sizes * scale
    small *= scale
    # finest stride 4 (stem + max-pool) unless boxes under 6 voxels need stride 2 (MONAI LUNA16 uses 4)
    max_pool = small >= 6
    stem_stride = 2
    stride = stem_stride * (2 if max_pool else 1)
    divisor = stride * 2 ** (LEVELS - 1)
    tiles = choose_scale_and_tiles(median, source_sizes, divisor) if dims == 2 else None
    if tiles:
        patch = tiles["patch_size"]
    else:
        patch = [max(min(round_up(s * scale, divisor), round_up(MAX_PATCH_3D, divisor)), divisor) for s in median]
    sample = train[np.linspace(0, len(train) - 1, min(len(train), 40)).astype(int)]
    if grid:  # a voxel sample per scan: forty 512x512x300 scans are never held at once
        mean, std, (low, high) = sampled_intensities(dataset, sample)
        channels = len(mean)
    else:
        # decoded near the plan's scale and thinned: forty 4288 x 2848 photographs are never held at once
        images = [thinned(read_case_near_scale(dataset, int(i), {"spatial_dims": dims, "scale": scale})[0])
                  for i in sample]
        channels = int(np.bincount([im.shape[0] for im in images]).argmax())
        low, high = intensity_range(images)
        clipped = [np.clip(im[:channels], low, high) for im in images if im.shape[0] >= channels]
        mean = [float(np.mean([c[ch].mean() for c in clipped])) for ch in range(channels)]
        std = [float(max(np.sqrt(np.mean([c[ch].var() for c in clipped])), 1e-6)) for ch in range(channels)]
    batch = 4 if dims == 2 else 2
    world = {} if grid is None else {
        "target_spacing": grid["target_spacing"],  # array order (z, y, x), mm
        "median_spacing": grid["median_spacing"],
        "box_size_mm_percentiles": {str(q): [round(float(v), 2) for v in np.percentile(grid["sizes_mm"], q, axis=0)]
                                    for q in (5, 50, 95)},
    }
    power = size_draw_power(grid["sizes_mm"]) if grid is not None else None
    if power is not None:
        world["positive_size_power"] = power
    anchors = plan_anchors(sizes, stride)
    if grid:
        anchors["anchor_shapes_mm"] = [[round(a * t, 2) for a, t in zip(shape, grid["target_spacing"])]
                                       for shape in anchors["anchor_shapes"]]
    return {
        "task": "detection",
        "spatial_dims": dims,
        "in_channels": channels,
        "num_classes": len(dataset.classes),
        "median_shape": [float(v) for v in median],
        "scale": round(float(scale), 4),
        "patch_size": patch,
        # (prediction shrinks it to the scan where the scan is smaller: infer.prediction_window)
        **({"inference_window": [max(p, round_up(INFERENCE_WINDOW_3D, divisor)) for p in patch]} if dims == 3 else {}),
        "size_divisor": divisor,
        "stem_stride": stem_stride,
        "max_pool": bool(max_pool),
        **world,
        **anchors,
        "normalization": {"clip": [low, high], "mean": mean, "std": std},
        "batch_size": batch,
        "positive_fraction": 0.5,  # share of patches centred on a box (oversampling lesions; the rest anywhere)
        "hard_negative_fraction": 0.5,  # of the other patches: share centred on a hard negative, where listed
        "iterations_per_epoch": int(np.clip(len(train) // batch, 8, 60)),
        "epochs": 60,
        "window_overlap": tiles["window_overlap"] if tiles else
        float(min(0.5, max(0.25, float(np.percentile(sizes.max(1), 95)) / max(min(patch), 1)))),
        **({"tiling": {k: tiles[k] for k in ("tiled", "scaled_median_shape", "median_box_at_scale")}} if tiles else {}),
        "model": "retinanet",
        # 2D plans also zoom (pixel sizes vary between photographs and microscopes); 3D plans keep each
        # object's size, which in world units is a physical measurement
        "augment": {"flip_axes": list(range(dims)), "rot90": True, "intensity": 0.1, "noise": 0.05,
                    **({"zoom": [0.8, 1.25]} if dims == 2 else {})},
    }
