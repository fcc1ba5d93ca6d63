"""Training on regions (nnU-Net for BraTS and nested labels): one sigmoid output per region, not a softmax.

A region is a set of labels, e.g. organ = {1, 2} and lesion = {2} for MSD Task03 (liver = 1, cancer = 2): the
network says "inside the organ" and "lesion" independently, so an organ voxel is never a lesion's rival.
plan.json lists them in order under ``regions``; inference converts back to labels by painting each region
in that order with the label it owns (the one no later region holds).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn


def owned_labels(regions: Sequence[dict[str, Any]]) -> list[int]:
    """The label each region writes: its labels that no later region contains (the largest one)."""
    out = []
    for i, region in enumerate(regions):
        later = {int(v) for r in regions[i + 1:] for v in r["labels"]}
        own = sorted({int(v) for v in region["labels"]} - later) or sorted(int(v) for v in region["labels"])
        out.append(own[-1])
    return out


def region_targets(label: torch.Tensor, regions: Sequence[dict[str, Any]]) -> torch.Tensor:
    """(B, 1, *spatial) integer labels -> (B, R, *spatial) float region masks."""
    masks = [torch.isin(label[:, 0], torch.as_tensor([int(v) for v in r["labels"]], device=label.device))
             for r in regions]
    return torch.stack(masks, 1).float()


class RegionLoss(nn.Module):
    """Soft Dice (batch Dice) + binary cross-entropy per region, with deep-supervision weights as nnU-Net."""

    def __init__(self, regions: Sequence[dict[str, Any]]):
        super().__init__()
        from monai.losses import DiceLoss

        self.regions = list(regions)
        self.dice = DiceLoss(sigmoid=True, batch=True, smooth_nr=1e-5, smooth_dr=1e-5)
        self.bce = nn.BCEWithLogitsLoss()

    def forward(self, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        from medsight.losses.segmentation import deep_supervision_weights

        target = region_targets(label.long(), self.regions)
        if output.ndim == label.ndim + 1:
            weights = deep_supervision_weights(output.shape[1])
            return sum(w * (self.dice(output[:, i], target) + self.bce(output[:, i], target)) for i, w in enumerate(weights))
        return self.dice(output, target) + self.bce(output, target)


def regions_to_labels(probs: torch.Tensor | np.ndarray, regions: Sequence[dict[str, Any]], threshold: float = 0.5) -> np.ndarray:
    """(R, *spatial) region probabilities -> uint8 label map, regions painted in order."""
    probs = probs.numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    out = np.zeros(probs.shape[1:], np.uint8)
    for r, value in enumerate(owned_labels(regions)):
        out[probs[r] > threshold] = value
    return out


def probabilities_as_logits(probs: torch.Tensor) -> torch.Tensor:
    """Inverse sigmoid, for a validation loss from averaged probabilities."""
    p = probs.clamp(1e-6, 1 - 1e-6)
    return torch.log(p) - torch.log1p(-p)
