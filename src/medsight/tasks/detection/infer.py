"""Detection inference: whole images or sliding windows, boxes merged across windows and ensemble members."""

from __future__ import annotations

import mmap
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.errors import MedsightError
from medsight.models.detection.dense import detector_of
from medsight.tasks.detection.data import pad_to, prepare_record
from medsight.tasks.detection.fusion import fuse_detections
from medsight.tasks.detection.tiling import MOST_BOXES, merge_tile_boxes, round_up, tile_grid


def detections(model: Any, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
    """A detector's detections per image: a torch module's eval forward, an ONNX graph of the whole detector,
    or an ONNX engine's dense outputs decoded by the PyTorch twin's ``postprocess`` (what forward ends in)."""
    if isinstance(model, nn.Module) or getattr(model, "gives_detections", False):
        return model(x)  # a torch module's eval forward, or a graph exported with its postprocess
    detector = detector_of(getattr(model, "torch_module", None))
    if not callable(getattr(detector, "postprocess", None)):
        raise MedsightError(None, f"{model!r} gives dense outputs but no PyTorch detector to decode them")
    return detector.postprocess(model(x), [list(x.shape[2:])] * len(x))


def run_network(model: Any, x: torch.Tensor) -> list[dict[str, np.ndarray]]:
    """A detector's eval output as numpy boxes / scores / labels per image."""
    with torch.no_grad():
        outputs = detections(model, x)
    out = []
    for o in outputs:
        scores = o.get("scores", o.get("labels_scores"))
        out.append({"boxes": o["boxes"].float().cpu().numpy(), "scores": scores.float().cpu().numpy(),
                    "labels": o["labels"].cpu().numpy().astype(int)})
    return out


def drop_pages(image: np.ndarray) -> None:
    """Release the pages a memory-mapped scan's windows have read (the file stays in the page cache), so
    resident memory is a window, not the scan, however large the scan."""
    mapping = getattr(image, "_mmap", None) if isinstance(image, np.memmap) else None
    if mapping is not None and hasattr(mapping, "madvise"):
        mapping.madvise(mmap.MADV_DONTNEED)


def prediction_window(models: Sequence[Any], plan: dict[str, Any], shape: Sequence[int]) -> tuple[list[int], float]:
    """The sliding window over a prepared image of ``shape`` and the overlap of neighbouring windows.

    A 3D plan's ``inference_window`` is larger than its training patch: per voxel a 3D network costs less in
    a large window (the same kernels on longer rows, and a border of padding that is a smaller share of it),
    and fewer windows re-read fewer overlaps. Neighbours still overlap by as
    many voxels as patch-sized windows would, so a box that patch windows see whole is seen whole. ONNX
    engines keep the patch: their exported input may be fixed to it.
    """
    patch = [int(p) for p in plan["patch_size"]]
    overlap = float(plan.get("window_overlap", 0.25))
    wanted = plan.get("inference_window")
    if not wanted or not all(isinstance(m, nn.Module) for m in models):
        return patch, overlap
    divisor = int(plan["size_divisor"])
    # never larger than the image needs (rounded up to the network's size divisor), never below the patch
    window = [max(p, min(int(w), round_up(s, divisor))) for w, p, s in zip(wanted, patch, shape)]
    return window, max(overlap * p / w for p, w in zip(patch, window))


@contextmanager
def box_limits_scaled(models: Sequence[Any], factor: float) -> Iterator[None]:
    """Raise the detectors' per-image box limits (top-k per level, proposals, detections) by ``factor`` while
    they see windows ``factor`` times the training patch's volume: one window then stands for that many."""
    def grow(value: Any) -> Any:  # Faster R-CNN keeps (training, inference) pairs
        return tuple(map(grow, value)) if isinstance(value, tuple) else int(np.ceil(value * factor))

    detectors = [d for d in map(detector_of, models) if callable(getattr(d, "box_limits", None))]
    saved = [d.box_limits() for d in detectors]
    try:
        for detector, limits in zip(detectors, saved):
            detector.set_box_limits({key: grow(value) for key, value in limits.items()})
        yield
    finally:
        for detector, limits in zip(detectors, saved):
            detector.set_box_limits(limits)


def detect_prepared(models: Sequence[Any], image: torch.Tensor, plan: dict[str, Any], device: torch.device) -> dict[str, np.ndarray]:
    """Boxes for a prepared (C, *spatial) image, in its coordinates; windows when it exceeds one window."""
    dims = plan["spatial_dims"]
    shape = list(image.shape[1:])
    divisor = int(plan["size_divisor"])
    window, overlap = prediction_window(models, plan, shape)
    if all(s <= w for s, w in zip(shape, window)):
        grid = [[0] * dims]
        window = [round_up(s, divisor) for s in shape]
    else:  # tiles of the window (medsight.tasks.detection.tiling)
        grid = tile_grid(shape, window, overlap)
    factor = float(np.prod(window) / np.prod([int(p) for p in plan["patch_size"]]))
    found = []
    with box_limits_scaled(models, factor) if factor > 1 else nullcontext():
        for start in grid:
            index = (slice(None),) + tuple(slice(s, s + w) for s, w in zip(start, window))
            piece = image[index]
            if isinstance(piece, np.ndarray):  # a memory-mapped cached scan: only this window is read
                piece = torch.from_numpy(np.array(piece, dtype=np.float32))  # a writable copy of the window
                drop_pages(image)
            crop = pad_to(piece, window)[None].to(device)
            members = [run_network(model, crop)[0] for model in models]
            if len(members) > 1 and plan.get("ensemble_fusion", "nms") == "wbf":
                found.append((start, fuse_detections(members)))  # an ensemble's boxes fused window by window
            else:
                found += [(start, member) for member in members]  # merged by NMS with the other windows' boxes
    merged = merge_tile_boxes(found, window, shape, apply_nms=len(found) > 1)
    order = np.argsort(-merged["scores"], kind="mergesort")[:MOST_BOXES]
    return {k: v[order] for k, v in merged.items()}


def detect_image(models: Sequence[Any], raw: np.ndarray, plan: dict[str, Any], device: torch.device,
                 spacing: Sequence[float] | None = None, source_shape: Sequence[int] | None = None) -> dict[str, np.ndarray]:
    """Boxes (original voxel coordinates, array-axis order), scores and 0-based labels for a raw image.

    A world-unit plan resamples the scan from its array-order ``spacing`` to the plan's target spacing first.
    ``source_shape``: the full picture's shape when ``raw`` was decoded smaller (tiling.read_near_scale); the
    boxes are then in the full picture's pixels.
    """
    for model in models:
        if isinstance(model, nn.Module):
            model.eval()
    if "target_spacing" in plan:
        from medsight.tasks.detection.world import cache_plan, prepare_world
        from medsight.tasks.detection.world_cache import detect_world, streams

        if spacing is None:
            raise MedsightError(None, "this run detects in millimetres: the scan's voxel spacing is needed")
        if streams(cache_plan(plan)):  # resampled slab by slab into a temporary file, read memory-mapped
            found, ratio = detect_world(models, raw, spacing, plan, device, cache_plan(plan))
        else:
            image, ratio = prepare_world(raw, spacing, plan)
            found = detect_prepared(models, image, plan, device)
        found["boxes"] = found["boxes"] / np.concatenate([ratio, ratio])
        return found
    record = prepare_record(raw, plan, tuple(source_shape) if source_shape else None)
    found = detect_prepared(models, record.image, plan, device)
    found["boxes"] = record.invert_boxes(found["boxes"])
    return found
