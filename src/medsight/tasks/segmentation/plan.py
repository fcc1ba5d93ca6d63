"""Dataset fingerprint and plan for segmentation, following nnU-Net's planner on a CPU budget.

Fingerprint: spacings, shapes, foreground intensity statistics per channel and class volumes. Plan: target
spacing (median, with nnU-Net's anisotropy rule), normalisation (CT: clip to the foreground's 0.5-99.5
percentiles and z-score with its statistics; other modalities: per-case z-score), patch size from the median
shape under a voxel budget, network topology (pooling per axis while the feature map stays >= 4 voxels and
the axis is not much coarser than the finest one), batch size from a batch voxel budget. Preprocessing steps
(medsight.data.steps): crop to the non-zero region in 3D (nnU-Net) or where it saves pixels in 2D, N4 (on the
MR channels), denoising and CLAHE offered but off, then resampling and normalisation.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medsight.data.steps import nonzero_box, planned_steps

FINGERPRINT_CASES = 50  # cases read in full for intensities and class volumes; spacing and shape of these too
FOREGROUND_SAMPLES = 10000  # foreground voxels sampled per case and channel
ANISOTROPY_RATIO = 3.0  # nnU-Net: an axis with spacing > 3x the finest is treated as out of plane
MIN_FEATURE_SIZE = 4  # smallest feature-map edge at the bottom of the U-Net
MAX_LEVELS = {2: 7, 3: 6}  # resolution levels (pools + 1), as nnU-Net's caps
# voxel budgets sized for CPU training (nnU-Net's GPU budgets are ~10x larger)
PATCH_VOXELS = {2: 256 * 256, 3: 64 * 64 * 64}
BATCH_VOXELS = {2: 4 * 256 * 256, 3: 4 * 48 * 48 * 48}
BATCH_RANGE = (2, 8)
ITERATIONS_PER_EPOCH = 25
DEFAULT_EPOCHS = 100
DEFAULT_MODEL = "dynunet_lite"
# channel names (dataset.json) of MR images, whose coil bias N4 removes; not ADC/T1 maps, which are quantitative
MRI_NAMES = {"mri", "mr", "t1", "t1w", "t1gd", "t1c", "t1ce", "t2", "t2w", "flair", "pd", "dwi", "swi"}
N4_VOXELS = {2: 128 * 128, 3: 48 * 48 * 48}  # N4 fits its field on an image shrunk to about this size
CROP_MIN_SAVING = 0.1  # 2D: crop to the non-zero region when it removes at least this share of the pixels


def fingerprint(dataset, indices: Sequence[int]) -> dict[str, Any]:
    """Statistics of the training cases that the plan is derived from."""
    indices = list(indices)
    chosen = [indices[i] for i in np.linspace(0, len(indices) - 1, min(len(indices), FINGERPRINT_CASES)).astype(int)]
    rng = np.random.default_rng(0)
    spacings, shapes, boxes, samples = [], [], [], [[] for _ in dataset.channels]
    volumes = {c: [] for c in dataset.labels if c != 0}
    for index in chosen:
        case = dataset.load_case(int(index))
        spacings.append(case.spacing)
        shapes.append(case.image.shape[1:])
        boxes.append([b.stop - b.start for b in nonzero_box(case.image)])
        label = case.label
        voxel = float(np.prod(case.spacing))
        for c in volumes:
            volumes[c].append(float((label == c).sum()) * voxel)
        foreground = label > 0 if label.any() else np.ones_like(label, dtype=bool)
        for ch in range(case.image.shape[0]):
            values = case.image[ch][foreground]
            samples[ch].append(rng.choice(values, min(len(values), FOREGROUND_SAMPLES), replace=False))
    intensity = []
    for values in samples:
        v = np.concatenate(values).astype(np.float64)
        intensity.append({"mean": float(v.mean()), "std": float(v.std()), "percentile_00_5": float(np.percentile(v, 0.5)),
                          "percentile_99_5": float(np.percentile(v, 99.5)), "min": float(v.min()), "max": float(v.max())})
    return {"cases": len(chosen), "spacings": [list(map(float, s)) for s in spacings],
            "shapes": [list(map(int, s)) for s in shapes], "nonzero_shapes": [list(map(int, s)) for s in boxes],
            "foreground_intensity": intensity,
            "class_volume_mm3": {dataset.labels[c]: float(np.mean(v)) for c, v in volumes.items()}}


def target_spacing(spacings: np.ndarray, shapes: np.ndarray) -> list[float]:
    """Median spacing; an anisotropic axis gets its 10th percentile instead (nnU-Net's rule)."""
    target = np.median(spacings, axis=0)
    worst = int(np.argmax(target))
    others = [a for a in range(len(target)) if a != worst]
    median_shape = np.median(shapes, axis=0)
    anisotropic_spacing = target[worst] > ANISOTROPY_RATIO * min(target[a] for a in others)
    few_slices = median_shape[worst] * ANISOTROPY_RATIO < min(median_shape[a] for a in others)
    if anisotropic_spacing and few_slices:
        coarse = np.percentile(spacings[:, worst], 10)
        target[worst] = max(coarse, max(target[a] for a in others) + 1e-5)
    return [float(s) for s in target]


def shrink_patch(shape: Sequence[float], spacing: Sequence[float], budget: int) -> list[int]:
    """Start at the median shape; shrink the longest axis in mm by 10% until the patch fits the voxel budget."""
    patch = np.array(shape, dtype=np.float64)
    spacing = np.asarray(spacing, dtype=np.float64)
    while np.prod(patch) > budget:
        axis = int(np.argmax(patch * spacing))
        patch[axis] *= 0.9
    return [max(MIN_FEATURE_SIZE, int(round(p))) for p in patch]


def topology(patch: Sequence[int], spacing: Sequence[float]) -> tuple[list[int], list[list[int]], list[list[int]]]:
    """(patch size divisible by the pooling, kernel sizes and strides per level) as nnU-Net's planner."""
    dims = len(patch)
    size = np.array(patch, dtype=np.float64)
    current = np.array(spacing, dtype=np.float64)

    def kernel() -> list[int]:
        # a 1-voxel kernel along an axis that is still much coarser than the finest (thick slices)
        return [3 if current[a] <= 2 * current.min() else 1 for a in range(dims)]

    kernels, strides = [kernel()], [[1] * dims]
    while len(strides) < MAX_LEVELS[dims]:
        can = [a for a in range(dims) if size[a] / 2 >= MIN_FEATURE_SIZE and current[a] <= 2 * current.min()]
        if not can:
            break
        stride = [2 if a in can else 1 for a in range(dims)]
        size = size / np.array(stride)
        current = current * np.array(stride)
        strides.append(stride)
        kernels.append(kernel())
    divisor = np.prod(np.array(strides), axis=0)
    patch_out = [int(np.ceil(p / d) * d) for p, d in zip(patch, divisor)]
    return patch_out, kernels, strides


def normalization(modalities: Sequence[str], intensity: Sequence[dict[str, float]]) -> list[dict[str, Any]]:
    """Per channel: CT uses the foreground's clip range and statistics, everything else a per-case z-score."""
    out = []
    for name, stats in zip(modalities, intensity):
        if name.strip().lower() == "ct":
            out.append({"scheme": "ct", "clip": [stats["percentile_00_5"], stats["percentile_99_5"]],
                        "mean": stats["mean"], "std": max(stats["std"], 1e-8)})
        else:
            out.append({"scheme": "zscore"})
    return out


def preprocessing_steps(modalities: Sequence[str], dims: int, shapes: np.ndarray,
                        nonzero_shapes: np.ndarray) -> list[dict[str, Any]]:
    """The plan's steps, switched on or off from the data (a user flips "enabled" in plan.json)."""
    saving = 1.0 - float(np.median(np.prod(nonzero_shapes, axis=1) / np.prod(shapes, axis=1)))
    crop = dims == 3 or saving >= CROP_MIN_SAVING
    mri = [c for c, name in enumerate(modalities) if name.strip().lower() in MRI_NAMES]
    median_voxels = float(np.prod(np.median(shapes, axis=0)))
    shrink = int(max(1, np.ceil((median_voxels / N4_VOXELS[dims]) ** (1 / dims))))
    return planned_steps("segmentation", {
        "crop_nonzero": (crop, f"{'3D: nnU-Net crops' if dims == 3 else '2D'}; the non-zero box removes "
                               f"{saving:.0%} of the voxels"),
        # offered on the MR channels but off: nnU-Net reaches its results without it, and on hippocampus MRI it
        # changed Dice by +0.005, within the noise of one run, for 7 s of preprocessing a case
        # (benchmarks/preprocessing); a scan with a visible coil bias is the case to switch it on
        "n4_bias_field": (False, "off: no measured gain on MR benchmarks; set enabled for MR scans with a visible coil bias"
                          if mri else "no MR channel in dataset.json")},
        n4_bias_field={"channels": mri or list(range(len(modalities))), "shrink_factor": shrink})


def region_entry(labels: dict[int, str]) -> dict[str, Any]:
    """Nested labels (an organ and a lesion inside it) train as regions, as nnU-Net trains BraTS."""
    from medsight.io.nested_labels import region_plan

    regions = region_plan(labels)
    if regions is None:
        return {}
    return {"regions": regions, "regions_reason": f"{regions[1]['name']} lies inside {regions[0]['name']}: one sigmoid per "
                                                  "region (organ with its lesions, then lesions); delete to train a softmax over labels"}


def make_segmentation_plan(dataset, target=None) -> dict[str, Any]:
    """The plan.json of a segmentation data set (editable; every later step reads only this).

    target: a tasks.plan_target.PlanTarget; on a GPU the patch and batch budgets follow its memory.
    """
    from medsight.tasks.plan_target import PlanTarget, gpu_budgets

    target = target or PlanTarget()
    dims = dataset.spatial_dims
    patch_voxels, batch_voxels, batch_range = PATCH_VOXELS[dims], BATCH_VOXELS[dims], BATCH_RANGE
    if target.device == "cuda" and target.memory_bytes:
        patch_voxels, batch_voxels, batch_range = gpu_budgets(dims, target.memory_bytes)
    prints = fingerprint(dataset, dataset.splits["train"])
    spacings, shapes = np.array(prints["spacings"]), np.array(prints["shapes"])
    steps = preprocessing_steps(dataset.channels, dims, shapes, np.array(prints["nonzero_shapes"]))
    if steps[0]["enabled"]:  # patch and spacing follow the cropped images, as nnU-Net's planner
        shapes = np.array(prints["nonzero_shapes"])
    spacing = target_spacing(spacings, shapes)
    median_shape = np.median(shapes * spacings / np.array(spacing), axis=0)
    patch = shrink_patch(median_shape, spacing, patch_voxels)
    patch, kernels, strides = topology(patch, spacing)
    batch = int(np.clip(batch_voxels // int(np.prod(patch)), *batch_range))
    all_axes = list(range(dims))
    return {
        "task": "segmentation",
        "planned_for": target.record(),
        "spatial_dims": dims,
        "in_channels": len(dataset.channels),
        "num_classes": len(dataset.labels),
        "labels": {str(k): v for k, v in dataset.labels.items()},
        **({"label_codes": dataset.label_codes} if dataset.label_codes else {}),  # for DICOM results
        **region_entry(dataset.labels),
        "fingerprint": {k: v for k, v in prints.items() if k not in ("spacings", "shapes", "nonzero_shapes")} | {
            "median_spacing": [float(s) for s in np.median(spacings, axis=0)],
            "median_shape": [float(s) for s in np.median(shapes, axis=0)]},
        "preprocessing": {"steps": steps},  # in order; resample and normalize use the two entries below
        "target_spacing": spacing,  # array axis order: (z, y, x) or (y, x)
        "median_shape_resampled": [float(s) for s in median_shape],
        "normalization": normalization(dataset.channels, prints["foreground_intensity"]),
        "patch_size": patch,
        "kernel_sizes": kernels,
        "strides": strides,
        "batch_size": batch,
        "model": DEFAULT_MODEL,
        "deep_supervision": True,
        "iterations_per_epoch": ITERATIONS_PER_EPOCH,
        "epochs": DEFAULT_EPOCHS,
        "oversample_foreground": 0.33,
        "validation_cases": 20,  # per-epoch validation on at most this many cases, for speed
        "augment": {"rotate_degrees": 30.0 if dims == 3 else 180.0, "scale": [0.7, 1.4], "affine_probability": 0.2,
                    "flip_axes": all_axes, "noise_std": 0.1, "noise_probability": 0.1, "blur_probability": 0.2,
                    "intensity_scale": 0.25, "intensity_probability": 0.15, "gamma": [0.7, 1.5], "gamma_probability": 0.3},
        "inference": {"overlap": 0.5, "mirror_axes": all_axes, "tta": True, "sw_batch_size": 2},
        "evaluation": {"nsd_tolerance_mm": 1.0},  # a number, or one per foreground class in label order
    }
