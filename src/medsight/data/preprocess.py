"""Plan-driven image preparation for classification: the plan's steps, resize to its input size, clip, z-score."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medsight.data.steps import Prepared, apply_steps, as_float_tensor


def intensity_range(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """The 0.5-99.5 percentile range of a sample of images (robust to a few hot pixels)."""
    values = np.concatenate([np.asarray(s, dtype=np.float32).ravel()[::max(1, s.size // 20000)] for s in samples])
    low, high = np.percentile(values, [0.5, 99.5])
    return float(low), float(high if high > low else low + 1.0)


def bounded_range(samples: Sequence[np.ndarray]) -> tuple[float, float]:
    """intensity_range, except for 8-bit images: their own 0..255.

    An 8-bit photograph or screenshot has no outlier to guard against, and its brightest pixels are often the
    finding itself (a lesion, an exudate, a calcification): the 99.5th percentile of the sample cuts them flat.
    """
    if samples and all(np.asarray(s).dtype == np.uint8 for s in samples):
        return 0.0, 255.0
    return intensity_range(samples)


def resize(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(C, *spatial) -> (C, *size), with anti-aliasing when 2D images shrink."""
    if tuple(image.shape[1:]) == tuple(size):
        return image
    x = image[None].float()
    if len(size) == 2:
        x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    else:
        x = F.interpolate(x, size=tuple(size), mode="trilinear", align_corners=False)
    return x[0]


def prepare_image(image: np.ndarray, plan: dict[str, Any]) -> torch.Tensor:
    """A raw (C, *spatial) image -> the network's normalised float tensor (C, *input_size), through the plan's steps."""
    return as_float_tensor(prepare_record(image, plan).image)


def prepare_record(image: np.ndarray, plan: dict[str, Any]) -> Prepared:
    """prepare_image with the record of its geometric steps, to map maps of the network's grid back."""
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))
    channels = plan["in_channels"]
    if x.shape[0] != channels:
        if x.shape[0] == 1:  # grey image into an RGB model
            x = x.expand(channels, *x.shape[1:])
        elif channels == 1:  # RGB image into a grey model: luminance
            x = (x[:3] * torch.tensor([0.299, 0.587, 0.114]).view(3, *[1] * (x.ndim - 1))).sum(0, keepdim=True)
        else:
            x = x[:channels]

    def resize_step(state: Prepared) -> Prepared:
        return replace(state, image=resize(as_float_tensor(state.image), plan["input_size"]))

    def normalize_step(state: Prepared) -> Prepared:
        return replace(state, image=normalize(as_float_tensor(state.image), plan["normalization"]))

    # classification images carry no spacing: the steps work in pixel units
    state = apply_steps(x, (1.0,) * (x.ndim - 1), plan, {"resize": resize_step, "normalize": normalize_step})
    return replace(state, image=as_float_tensor(state.image))


def zscore(x: torch.Tensor, mean: Any, std: Any, clip: Sequence[float] | None = None) -> torch.Tensor:
    """(x, clipped to clip) minus mean, over std: one number each, or one per channel of a (C, *spatial) x.

    Every task normalises through this: classification and detection with the plan's clip and statistics,
    segmentation per channel (CT clip and global statistics, or the case's own mean and deviation).
    """
    if clip is not None:
        x = x.clamp(clip[0], clip[1])
    shape = (-1, *[1] * (x.ndim - 1))
    mean = torch.as_tensor(mean, dtype=torch.float32).reshape(shape)
    std = torch.as_tensor(std, dtype=torch.float32).reshape(shape)
    return (x - mean) / std


def normalize(x: torch.Tensor, norm: dict[str, Any]) -> torch.Tensor:
    """Clip to the plan's range, then z-score per channel with the plan's statistics."""
    return zscore(x, norm["mean"], norm["std"], norm["clip"])


def prepare_many(load: Callable[[int], np.ndarray], indices: Sequence[int], plan: dict[str, Any]) -> torch.Tensor:
    """Prepare several cases into one (N, C, *input_size) tensor."""
    shape = (plan["in_channels"], *plan["input_size"])
    out = torch.empty((len(indices), *shape), dtype=torch.float32)
    for row, index in enumerate(indices):
        out[row] = prepare_image(load(int(index)), plan)
    return out


def decode_size(plan: dict[str, Any]) -> tuple[int, int] | None:
    """Large JPEGs are decoded at a reduced scale no smaller than twice the 2D input (medsight.io.images)."""
    if plan.get("spatial_dims") != 2:
        return None
    return tuple(2 * int(s) for s in plan["input_size"])
