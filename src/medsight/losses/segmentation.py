"""Dice + cross-entropy (MONAI DiceCELoss) with nnU-Net's deep-supervision weighting."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.losses import DiceCELoss


def deep_supervision_weights(heads: int) -> list[float]:
    """nnU-Net's weights: halve per lower resolution, normalised to sum to 1."""
    raw = [0.5**i for i in range(heads)]
    return [w / sum(raw) for w in raw]


class SegmentationLoss(nn.Module):
    """Soft Dice (batch Dice, as nnU-Net) + cross-entropy on logits and an integer label map (B, 1, *spatial)."""

    def __init__(self, batch_dice: bool = True):
        super().__init__()
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=batch_dice,
                                  smooth_nr=1e-5, smooth_dr=1e-5)

    def forward(self, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """output: logits (B, C, *spatial), or a deep-supervision stack (B, heads, C, *spatial); label (B, 1, *spatial)."""
        label = label.long()
        if output.ndim == label.ndim + 1:
            weights = deep_supervision_weights(output.shape[1])
            return sum(w * self.dice_ce(output[:, i], label) for i, w in enumerate(weights))
        return self.dice_ce(output, label)
