"""Detection batches: plan-driven preparation, box-aware patch sampling and augmentation (MONAI box ops)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from monai.apps.detection.transforms.box_ops import flip_boxes, rot90_boxes

from medsight.data.patches import crop
from medsight.data.preprocess import normalize
from medsight.data.steps import Prepared, Resized, apply_steps, as_float_tensor


def prepare_record(image: np.ndarray, plan: dict[str, Any], source_shape: tuple[int, ...] | None = None) -> Prepared:
    """The plan's steps (normalize, then scale) on a raw image, with the record that maps boxes back.

    ``source_shape``: the full image's shape when ``image`` was decoded smaller (tiling.read_case_near_scale);
    the scaled size and the boxes' record are those of the full image.
    """
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    channels = plan["in_channels"]
    if x.shape[0] != channels:
        if x.shape[0] == 1:
            x = x.expand(channels, *x.shape[1:])
        elif channels == 1:
            x = x[:3].mean(0, keepdim=True)
        else:
            x = x[:channels]

    def normalize_step(state: Prepared) -> Prepared:
        return replace(state, image=normalize(as_float_tensor(state.image), plan["normalization"]))

    def scale_step(state: Prepared) -> Prepared:
        x, scale = as_float_tensor(state.image), float(plan.get("scale", 1.0))
        before = tuple(source_shape or x.shape[1:])
        size = [max(1, int(round(s * scale))) for s in before]
        if list(x.shape[1:]) != size:
            mode = "bilinear" if x.ndim == 3 else "trilinear"
            x = F.interpolate(x[None], size=size, mode=mode, align_corners=False, antialias=x.ndim == 3)[0]
        # boxes follow the plan's scale exactly (the grid's sides are rounded to whole pixels)
        entry = Resized(before, tuple(x.shape[1:]), (scale,) * len(before))
        return replace(state, image=x, history=(*state.history, entry))

    return apply_steps(x, (1.0,) * (x.ndim - 1), plan, {"normalize": normalize_step, "scale": scale_step})


def pad_to(x: torch.Tensor, size: list[int]) -> torch.Tensor:
    """Zero-pad (C, *spatial) at the far end of each axis up to size (never crops)."""
    pads = []
    for have, want in zip(reversed(x.shape[1:]), reversed(size)):
        pads += [0, max(0, want - have)]
    return F.pad(x, pads) if any(pads) else x


def crop_boxes(boxes: np.ndarray, labels: np.ndarray, start: np.ndarray, size: np.ndarray,
               keep_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Boxes shifted into a patch and clipped to it; a box keeps its place if most of it is inside."""
    dims = len(start)
    if len(boxes) == 0:
        return boxes.reshape(0, 2 * dims), labels
    shifted = boxes - np.concatenate([start, start])
    clipped = np.concatenate([np.clip(shifted[:, :dims], 0, size), np.clip(shifted[:, dims:], 0, size)], 1)
    whole = np.prod(shifted[:, dims:] - shifted[:, :dims], 1)
    inside = np.prod(np.clip(clipped[:, dims:] - clipped[:, :dims], 0, None), 1)
    keep = inside >= keep_fraction * whole
    return clipped[keep], labels[keep]


@dataclass
class Case:
    """A prepared training case: normalised image (float16 to halve memory), its boxes on the same grid, and
    the record of the geometric steps that maps boxes found on it back."""

    image: torch.Tensor
    boxes: np.ndarray
    labels: np.ndarray
    steps: tuple = ()


def sample_patch(case: Any, patch: list[int], positive: bool, generator: torch.Generator,
                 hard_negative: bool = False, box: int | None = None) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """A patch around a box (positive: ``box``, else a random one), a hard negative, or anywhere, with its boxes.

    The image is a tensor in memory or a memory-mapped array on disk (world-unit plans): only the patch is read.
    """
    image = case.image
    size = np.array(patch)
    dims = len(patch)
    room = np.maximum(np.array(image.shape[1:]) - size, 0)
    negatives = getattr(case, "negatives", np.zeros((0, dims)))
    centre = None
    if positive and len(case.boxes):
        if box is None:
            box = int(torch.randint(len(case.boxes), (1,), generator=generator))
        chosen = case.boxes[box]
        centre = (chosen[:dims] + chosen[dims:]) / 2
    elif hard_negative and len(negatives):
        centre = negatives[int(torch.randint(len(negatives), (1,), generator=generator))]
    if centre is not None:
        jitter = (torch.rand(dims, generator=generator).numpy() - 0.5) * size / 2
        start = np.clip(np.round(centre - size / 2 + jitter), 0, room).astype(int)
    else:
        start = np.array([int(torch.randint(r + 1, (1,), generator=generator)) for r in room])
    boxes, labels = crop_boxes(case.boxes, case.labels, start, size)
    if isinstance(image, np.ndarray):
        return torch.from_numpy(crop(image, start, patch, 1)).float(), boxes, labels
    index = (slice(None),) + tuple(slice(s, s + p) for s, p in zip(start, patch))
    return pad_to(image[index], patch).float(), boxes, labels


def augment(image: torch.Tensor, boxes: torch.Tensor, settings: dict[str, Any],
            generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random flips and in-plane quarter turns (image and boxes together), intensity jitter and noise."""
    spatial = list(image.shape[1:])
    for axis in settings.get("flip_axes", []):
        if torch.rand(1, generator=generator) < 0.5:
            image = torch.flip(image, dims=[axis + 1])
            boxes = flip_boxes(boxes, spatial, flip_axes=axis)
    a, b = len(spatial) - 2, len(spatial) - 1
    if settings.get("rot90") and spatial[a] == spatial[b]:
        k = int(torch.randint(4, (1,), generator=generator))
        if k:
            image = torch.rot90(image, k, dims=(a + 1, b + 1))
            boxes = rot90_boxes(boxes, spatial, k=k, axes=(a, b))
    strength = settings.get("intensity", 0.0)
    if strength:
        gain, shift = (torch.rand(2, generator=generator) - 0.5) * 2 * strength
        image = image * (1 + gain) + shift
    noise = settings.get("noise", 0.0)
    if noise:
        image = image + torch.randn(image.shape, generator=generator) * noise * torch.rand(1, generator=generator)
    return image.contiguous(), boxes


def zoomed_window(patch: list[int], zoom: Sequence[float] | None, generator: torch.Generator) -> list[int]:
    """The window to read for a patch under scale augmentation: patch / z, z log-uniform in the zoom range.

    Objects of one kind vary in size between images (cells, lesions, scanners' fields of view); reading a
    window larger or smaller than the patch and resizing it to the patch shows the network each object at
    sizes around its planned scale. No zoom in the plan draws nothing, so older plans sample as before.
    """
    if not zoom:
        return list(patch)
    low, high = np.log(float(zoom[0])), np.log(float(zoom[1]))
    z = float(np.exp(low + (high - low) * float(torch.rand(1, generator=generator))))
    return [max(1, int(round(p / z))) for p in patch]


def resize_patch(image: torch.Tensor, boxes: np.ndarray, patch: list[int]) -> tuple[torch.Tensor, np.ndarray]:
    """A (C, *window) image resized to the patch, its boxes scaled with it (corner coordinates, pixel edges)."""
    window = image.shape[1:]
    mode = "bilinear" if len(patch) == 2 else "trilinear"
    resized = F.interpolate(image[None], size=list(patch), mode=mode, align_corners=False)[0]
    factors = np.array([p / w for p, w in zip(patch, window)], dtype=np.float64)
    return resized, (np.asarray(boxes, np.float64) * np.concatenate([factors, factors])).reshape(-1, 2 * len(patch))


def positive_draws(cases: list[Any], size_power: float) -> tuple[np.ndarray, torch.Tensor]:
    """Every training box as (case, box) with the chance that a positive patch is centred on it.

    A box is drawn in proportion to its size to the power ``-size_power`` (size: the geometric mean of its
    sides), so with power 1 a box half as large is drawn twice as often: small lesions are rare in the
    patches otherwise, since each box, whatever its size, gets about the same number of matched anchors.
    Cases without a box are never drawn for a positive patch.
    """
    owners, sizes = [], []
    for c, case in enumerate(cases):
        boxes = np.asarray(case.boxes, float)
        if len(boxes):
            dims = boxes.shape[1] // 2
            sides = np.maximum(boxes[:, dims:] - boxes[:, :dims], 1e-3)
            owners += [(c, b) for b in range(len(boxes))]
            sizes.append(np.exp(np.log(sides).mean(1)))
    if not owners:
        return np.zeros((0, 2), int), torch.zeros(0, dtype=torch.float64)
    weights = np.concatenate(sizes) ** -float(size_power)
    return np.asarray(owners, int), torch.from_numpy(weights / weights.sum())


class EpochBatches:
    """One epoch of patch batches: {"image": (B, C, *patch), "boxes": [...], "labels": [...]}.

    Each step draws from its own generator, seeded from (seed, step): the same batch in the training process or
    in any DataLoader worker (medsight.data.workers).
    """

    def __init__(self, cases: list[Case], plan: dict[str, Any], batch_size: int, steps: int, seed: int):
        self.cases, self.plan, self.batch_size, self.steps, self.seed = cases, plan, batch_size, steps, int(seed)
        # plans that name a size power draw positive patches over all boxes (small ones more often); older
        # plans draw a case, then one of its boxes
        power = plan.get("positive_size_power")
        self.owners, self.box_weights = positive_draws(cases, power) if power is not None else (None, None)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self.batch(step) for step in range(self.steps))

    def batch(self, step: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([self.seed, step]).generate_state(1)[0]))
        patch = list(self.plan["patch_size"])
        images, boxes, labels = [], [], []
        for _ in range(self.batch_size):
            case = self.cases[int(torch.randint(len(self.cases), (1,), generator=g))]
            positive = bool(torch.rand(1, generator=g) < self.plan.get("positive_fraction", 0.5))
            box = None
            if positive and self.owners is not None and len(self.owners):
                owner, box = self.owners[int(torch.multinomial(self.box_weights, 1, generator=g))]
                case = self.cases[int(owner)]
            hard = len(getattr(case, "negatives", ())) > 0 and bool(
                torch.rand(1, generator=g) < self.plan.get("hard_negative_fraction", 0.0))
            window = zoomed_window(patch, self.plan.get("augment", {}).get("zoom"), g)
            image, case_boxes, case_labels = sample_patch(case, window, positive, g, hard, box)
            if window != patch:
                image, case_boxes = resize_patch(image, case_boxes, patch)
            image, box_tensor = augment(image, torch.as_tensor(case_boxes, dtype=torch.float32),
                                        self.plan.get("augment", {}), g)
            images.append(image)
            boxes.append(box_tensor.reshape(-1, 2 * len(patch)))
            labels.append(torch.as_tensor(case_labels, dtype=torch.long))
        return {"image": torch.stack(images), "boxes": boxes, "labels": labels}
