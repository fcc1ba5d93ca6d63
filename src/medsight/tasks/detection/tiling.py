"""Large 2D images detected in tiles: the plan's scale and tile choice, the tile grid, and tile boxes merged.

A fundus photograph is 4288 x 2848 pixels and its lesions a hundred or two; squeezed into one network input of
a few hundred pixels, a lesion would be a pixel or two wide. The plan therefore keeps the boxes large enough
(``choose_scale_and_tiles``) and, when the scaled image is then larger than one network input, cuts it into
fixed square tiles that overlap by more than most boxes are wide. Training draws tiles (patches) centred on a
box for a share of each batch (``positive_fraction``) and anywhere for the rest; prediction runs every tile
of the grid (``tile_grid``) and ``merge_tile_boxes`` puts the boxes back in full-image coordinates: a box
cut by an inner tile edge is left to the neighbour that holds it whole, and NMS removes the copies that two
overlapping tiles both found.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from medsight.data.steps import enabled_steps
from medsight.io.images import Image, picture_shape, read_image
from medsight.models.detection.boxes import nms

MAX_SIDE_2D = 320  # an image whose boxes stay large enough is squeezed so its longer side fits this
MEDIAN_BOX_2D = 32.0  # ...but the median box is kept at least this many pixels (its geometric-mean side)
MIN_BOX_2D = 8.0  # ...and the small boxes (10th percentile) at least this many
MAX_PATCH_2D = 384  # a scaled image up to this is one network input; a larger one is tiled
TILE_2D = 256  # the tile side (a multiple of every size divisor the plan uses)
BORDER_MARGIN = 2.0  # pixels: a box this close to an inner tile edge is cut by it and left to a neighbour
MERGE_IOU = 0.5
MOST_BOXES = 300  # per image, the best first; also bounds the merge's NMS on a scan of thousands of windows


def geometric_sizes(sizes: np.ndarray) -> np.ndarray:
    """The geometric-mean side of each (N, dims) box size."""
    return np.exp(np.log(np.maximum(np.asarray(sizes, float), 1e-3)).mean(1))


def round_up(value: float, divisor: int) -> int:
    return int(np.ceil(value / divisor) * divisor)


def choose_scale(median_shape: Sequence[float], sizes: np.ndarray) -> float:
    """The 2D plan's scale: fit the median image into MAX_SIDE_2D unless that shrinks the median box below
    MEDIAN_BOX_2D or the small boxes below MIN_BOX_2D pixels; never above 1 (images are not enlarged)."""
    geo = geometric_sizes(sizes)
    fit = min(1.0, MAX_SIDE_2D / float(max(median_shape)))
    keep_median = MEDIAN_BOX_2D / max(float(np.median(geo)), 1e-3)
    keep_small = MIN_BOX_2D / max(float(np.percentile(geo, 10)), 1e-3)
    return float(min(1.0, max(fit, keep_median, keep_small)))


def choose_scale_and_tiles(median_shape: Sequence[float], sizes: np.ndarray, divisor: int) -> dict[str, Any]:
    """Scale, patch (tile) size and tile overlap of a 2D plan from the median image shape and the box sizes
    (N, 2) in source pixels; ``tiled`` says whether the scaled image is cut into tiles."""
    scale = choose_scale(median_shape, sizes)
    scaled = [float(s) * scale for s in median_shape]
    widest = float(np.percentile(np.asarray(sizes, float).max(1), 95)) * scale
    tiled = max(scaled) > MAX_PATCH_2D
    if tiled:  # square tiles at least twice the wide boxes, so most boxes lie whole inside some tile
        side = max(TILE_2D, round_up(2 * widest, divisor))
        patch = [side, side]
    else:
        patch = [min(round_up(s, divisor), round_up(MAX_PATCH_2D, divisor)) for s in scaled]
    overlap = float(min(0.5, max(0.25, widest / max(min(patch), 1))))
    return {"scale": scale, "patch_size": patch, "window_overlap": overlap, "tiled": bool(tiled),
            "scaled_median_shape": [round(s, 1) for s in scaled],
            "median_box_at_scale": round(float(np.median(geometric_sizes(sizes))) * scale, 1)}


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Start of each tile along one axis: as few tiles as keep neighbours overlapping by at least ``overlap``
    of a tile, spread evenly from the image's first pixel to its last."""
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    count = int(np.ceil((size - tile) / step)) + 1
    return [int(v) for v in np.round(np.linspace(0, size - tile, count))]


def tile_grid(shape: Sequence[int], tile: Sequence[int], overlap: float) -> list[list[int]]:
    """The start corner of every tile covering an image of ``shape`` (array order), row-major."""
    axes = [tile_starts(int(s), int(t), overlap) for s, t in zip(shape, tile)]
    return [list(map(int, g)) for g in np.array(np.meshgrid(*axes, indexing="ij")).reshape(len(shape), -1).T]


def cut_by_inner_edge(boxes: np.ndarray, start: Sequence[int], tile: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """True for tile boxes (tile coordinates) touching a tile edge that lies inside the image: truncated there."""
    dims = len(start)
    cut = np.zeros(len(boxes), dtype=bool)
    for d in range(dims):
        if start[d] > 0:
            cut |= boxes[:, d] < BORDER_MARGIN
        if start[d] + tile[d] < shape[d]:
            cut |= boxes[:, dims + d] > tile[d] - BORDER_MARGIN
    return cut


def merge_tile_boxes(found: Sequence[tuple[Sequence[int], dict[str, np.ndarray]]], tile: Sequence[int],
                     shape: Sequence[int], nms_iou: float = MERGE_IOU, apply_nms: bool = True) -> dict[str, np.ndarray]:
    """Boxes found on tiles (start corner, {"boxes", "scores", "labels"} in tile coordinates) in full-image
    coordinates: boxes cut by an inner tile edge dropped, the rest shifted, clipped to the image and, with
    ``apply_nms``, reduced by class-wise NMS (the copies two overlapping tiles both found)."""

    dims = len(shape)
    several = len(found) > 1
    boxes, scores, labels = [], [], []
    for start, result in found:
        tile_boxes = np.asarray(result["boxes"], np.float32).reshape(-1, 2 * dims)
        keep = ~cut_by_inner_edge(tile_boxes, start, tile, shape) if several else np.ones(len(tile_boxes), bool)
        boxes.append(tile_boxes[keep] + np.array(list(start) * 2, dtype=np.float32))
        scores.append(np.asarray(result["scores"], np.float32)[keep])
        labels.append(np.asarray(result["labels"], np.int64)[keep])
    merged = {"boxes": np.concatenate(boxes).reshape(-1, 2 * dims) if boxes else np.zeros((0, 2 * dims), np.float32),
              "scores": np.concatenate(scores) if scores else np.zeros(0, np.float32),
              "labels": np.concatenate(labels) if labels else np.zeros(0, np.int64)}
    merged["boxes"] = np.minimum(np.maximum(merged["boxes"], 0), np.array(list(shape) * 2, dtype=np.float32))
    if apply_nms and len(merged["scores"]):
        keep = nms(torch.from_numpy(merged["boxes"]), torch.from_numpy(merged["scores"]), nms_iou,
                   torch.from_numpy(merged["labels"]), MOST_BOXES).numpy()
        merged = {k: v[keep] for k, v in merged.items()}
    return merged


# decoding near the plan's scale --------------------------------------------------------------------------------
def reduced_decode_size(plan: dict[str, Any], shape: Sequence[int]) -> tuple[int, int] | None:
    """(rows, cols) a JPEG may be decoded at for this plan (the scaled size), or None for a full decode: only
    2D plans that shrink by half or more and whose steps are only normalize and scale (a crop or a filter
    before the scale must see the full grid)."""

    scale = float(plan.get("scale", 1.0))
    if plan.get("spatial_dims") != 2 or scale > 0.5 or len(shape) != 2:
        return None
    if any(step["name"] not in ("normalize", "scale") for step in enabled_steps(plan)):
        return None
    return max(1, int(round(shape[0] * scale))), max(1, int(round(shape[1] * scale)))


def read_near_scale(path: Any, plan: dict[str, Any], shape: Sequence[int] | None = None) -> tuple[Image, tuple[int, ...]]:
    """A picture decoded and resized to the plan's scaled size when that is half its size or less (a JPEG at
    a reduced DCT scale first), else read in full; with the full image's shape (the grid its boxes are on),
    taken from the file's header unless given."""

    shape = tuple(int(s) for s in shape) if shape is not None else picture_shape(path)
    target = reduced_decode_size(plan, shape) if shape is not None else None
    image = read_image(path, reduce_to=target, exact=True)
    return image, tuple(image.source_shape or image.shape)


def read_case_near_scale(dataset: Any, index: int, plan: dict[str, Any]) -> tuple[np.ndarray, tuple[int, ...]]:
    """A 2D case as (C, H, W) float32, at the plan's scaled size when its picture is at least twice that
    (read_near_scale), with the shape of the full image (the grid its boxes are on)."""

    sources = getattr(dataset, "sources", None)
    shape = tuple(int(s) for s in dataset.shapes[index]) if getattr(dataset, "shapes", None) else None
    if shape is None or not sources or len(sources[index]) != 1 or reduced_decode_size(plan, shape) is None:
        image = dataset.load_case(index)
        return image, tuple(image.shape[1:])
    image, shape = read_near_scale(sources[index][0], plan, shape)
    return np.asarray(image.array, dtype=np.float32), shape
