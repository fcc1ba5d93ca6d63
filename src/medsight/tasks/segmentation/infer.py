"""Segmentation inference: Gaussian-weighted sliding windows (MONAI), mirror TTA, ensembles, resampling back,
and largest-connected-component post-processing."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from medsight.data.augment import mirror_sets
from medsight.data.volumes import prepare_case, resample


@torch.no_grad()
def sliding_probabilities(models: Sequence[Callable[[torch.Tensor], torch.Tensor]], image: torch.Tensor,
                          plan: dict[str, Any], tta: bool, device: torch.device | str = "cpu") -> torch.Tensor:
    """Softmax (or, with the plan's regions, sigmoid) probabilities (C, *spatial) of a preprocessed (C_in, *spatial) image, averaged over models and mirrors."""
    from monai.inferers import sliding_window_inference

    infer = plan["inference"]
    flips = mirror_sets(infer["mirror_axes"]) if tta else [()]
    x = image[None].to(device)
    total: torch.Tensor | None = None
    count = 0
    for model in models:
        for axes in flips:
            dims = [2 + a for a in axes]
            flipped = x.flip(dims) if dims else x
            logits = sliding_window_inference(flipped, plan["patch_size"], infer.get("sw_batch_size", 2), model,
                                              overlap=infer["overlap"], mode="gaussian", sw_device=device, device="cpu")
            probs = logits.float().sigmoid_() if plan.get("regions") else softmax_(logits.float())
            probs = probs.flip(dims) if dims else probs
            total = probs if total is None else total.add_(probs)
            count += 1
    return total.div_(count)[0]


def softmax_(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 in place: a 512x512x300 volume's class maps take 1 GB per copy."""
    logits.sub_(logits.amax(1, keepdim=True)).exp_()
    return logits.div_(logits.sum(1, keepdim=True))


def argmax_slabs(probs: torch.Tensor, slab: int = 16) -> np.ndarray:
    """uint8 argmax over classes, slab by slab along the first axis (torch's argmax returns int64)."""
    out = np.empty(probs.shape[1:], dtype=np.uint8)
    for start in range(0, probs.shape[1], slab):
        out[start:start + slab] = probs[:, start:start + slab].argmax(0).numpy()
    return out


def class_values(plan: dict[str, Any]) -> np.ndarray | None:
    """Output channel -> label value, when dataset.json's values are not 0..C-1 (0, 1, 4); None when they are."""
    values = sorted(int(k) for k in plan.get("labels", {}))
    return None if not values or values == list(range(len(values))) else np.asarray(values, dtype=np.uint8)


def to_values(channels: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
    """A map of output channels (argmax, threshold) -> the label values dataset.json names."""
    values = class_values(plan)
    return channels if values is None else values[channels]


def largest_component(label: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Keep only the largest connected component of each given class (the rest becomes background)."""
    from scipy import ndimage

    out = label.copy()
    for c in classes:
        parts, n = ndimage.label(label == c)
        if n > 1:
            sizes = np.bincount(parts.ravel())[1:]
            out[(parts > 0) & (parts != 1 + int(np.argmax(sizes)))] = 0
    return out


def predict_label(models: Sequence[Callable], image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
                  state: dict[str, Any], tta: bool | None = None,
                  device: torch.device | str = "cpu") -> tuple[np.ndarray, torch.Tensor]:
    """A raw (C, *spatial) image -> (label map in the image's own grid, probabilities in that grid)."""
    prepared = prepare_case(image, spacing, plan)
    use_tta = plan["inference"].get("tta", True) if tta is None else tta
    probs = sliding_probabilities(models, prepared.image, plan, use_tta, device)
    # back through resampling and cropping: outside the crop is background (probability 1 for class 0;
    # under regions every region's probability is 0 there)
    probs = prepared.invert(probs, lambda p, shape: resample(p, shape, is_label=False),
                            fill=[0.0] if plan.get("regions") else [1.0])
    threshold = state.get("postprocessing", {}).get("foreground_threshold", 0.5)
    if plan.get("regions"):
        from medsight.tasks.segmentation.regions import regions_to_labels

        label = regions_to_labels(probs, plan["regions"])
    elif threshold != 0.5 and probs.shape[0] == 2:
        from medsight.tasks.segmentation.threshold import binary_label

        label = to_values(binary_label(probs[1], threshold), plan)  # the binary task's threshold, chosen on validation
    else:
        label = to_values(argmax_slabs(probs), plan)
    keep = state.get("postprocessing", {}).get("largest_component", [])
    return (largest_component(label, keep) if keep else label), probs
