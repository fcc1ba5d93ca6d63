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

    def __init__(self, batch_dice: bool = True, values: list[int] | None = None):
        super().__init__()
        # label values need not be 0..C-1 (dataset.json may name 0, 1, 4): a lookup turns each value into its
        # output channel, the position of the value among the sorted labels
        values = sorted(int(v) for v in values) if values else []
        lookup = torch.zeros(max(values, default=0) + 1, dtype=torch.long)
        lookup[values] = torch.arange(len(values))
        self.register_buffer("lookup", lookup if values != list(range(len(values))) else None, persistent=False)
        self.dice_ce = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=batch_dice,
                                  smooth_nr=1e-5, smooth_dr=1e-5)

    def forward(self, output: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """output: logits (B, C, *spatial), or a deep-supervision stack (B, heads, C, *spatial); label (B, 1, *spatial)."""
        label = label.long()
        if self.lookup is not None:
            label = self.lookup.to(label.device)[label]
        if output.ndim == label.ndim + 1:
            weights = deep_supervision_weights(output.shape[1])
            return sum(w * self.dice_ce(output[:, i], label) for i, w in enumerate(weights))
        return self.dice_ce(output, label)
