"""Plan-driven preprocessing of a volume in physical space: resample to the plan's spacing, normalise per channel.

Segmentation runs every case through this before caching it; detection in world units translates its plan
into the same settings (medsight.tasks.detection.world.cache_plan), so both tasks share one resampling.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medsight.data.preprocess import zscore
from medsight.data.steps import Prepared, apply_steps, as_float_tensor


def resampled_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> list[int]:
    return [max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target)]


def resample(array: torch.Tensor, shape: Sequence[int], is_label: bool) -> torch.Tensor:
    """(C, *spatial) -> (C, *shape): linear for intensities and probabilities, nearest for label maps."""
    if tuple(array.shape[1:]) == tuple(shape):
        return array
    mode = "nearest-exact" if is_label else ("bilinear" if len(shape) == 2 else "trilinear")
    kwargs = {} if is_label else {"align_corners": False}
    return F.interpolate(array[None].float(), size=tuple(shape), mode=mode, **kwargs)[0]


def normalize_channels(image: torch.Tensor, schemes: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Per channel: CT clip + global z-score, or per-case z-score."""
    out = torch.empty_like(image, dtype=torch.float32)
    for ch, scheme in enumerate(schemes):
        x = image[ch].float()
        if scheme["scheme"] == "ct":
            out[ch] = zscore(x, scheme["mean"], scheme["std"], scheme["clip"])
        else:
            out[ch] = zscore(x, x.mean(), x.std().clamp_min(1e-8))
    return out


def prepare_case(image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
                 label: np.ndarray | None = None):
    """Raw (C, *spatial) image (and label) through the plan's steps -> steps.Prepared (torch image, uint8 label)."""
    def resample_step(state: Prepared) -> Prepared:
        shape = resampled_shape(state.image.shape[1:], state.spacing, plan["target_spacing"])
        x = resample(as_float_tensor(state.image), shape, False)
        y = None if state.label is None else resample(
            torch.as_tensor(np.asarray(state.label, dtype=np.uint8))[None], shape, True)[0]
        return replace(state, image=x, label=y, spacing=tuple(float(t) for t in plan["target_spacing"]))

    def normalize_step(state: Prepared) -> Prepared:
        return replace(state, image=normalize_channels(as_float_tensor(state.image), plan["normalization"]))

    state = apply_steps(image, spacing, plan, {"resample": resample_step, "normalize": normalize_step}, label)
    label = None if state.label is None else torch.as_tensor(np.ascontiguousarray(state.label)).to(torch.uint8)
    return replace(state, image=as_float_tensor(state.image), label=label)


def preprocess(image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
               label: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw (C, *spatial) image (and label) -> the network's input on the plan's grid (and the label on it)."""
    state = prepare_case(image, spacing, plan, label)
    return state.image, state.label
