"""Classification losses, including the --balance choices for imbalanced classes."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def inverse_frequency_weights(class_counts: Sequence[int]) -> list[float]:
    """Weights proportional to 1/frequency, normalised to mean 1 (absent classes get weight 0)."""
    counts = torch.tensor(class_counts, dtype=torch.float64)
    weights = torch.where(counts > 0, counts.sum() / counts.clamp(min=1), torch.zeros_like(counts))
    present = weights > 0
    weights[present] = weights[present] / weights[present].mean()
    return [float(w) for w in weights]


class ClassificationLoss(nn.Module):
    """Cross-entropy (optionally class-weighted), focal loss, or BCE for multi-label targets."""

    def __init__(self, kind: str = "ce", class_weights: Sequence[float] | None = None, multilabel: bool = False,
                 gamma: float = 2.0, label_smoothing: float = 0.0):
        super().__init__()
        self.kind, self.multilabel, self.gamma, self.label_smoothing = kind, multilabel, gamma, label_smoothing
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            # for multi-label, class weights act as positive-class weights
            return F.binary_cross_entropy_with_logits(logits, target.float(), pos_weight=self.weight)
        if self.kind == "focal":
            return self.focal(logits, target)
        return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)

    def focal(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Focal loss (Lin et al. 2017): down-weights easy, mostly majority-class, examples."""
        log_p = F.log_softmax(logits, dim=1).gather(1, target[:, None])[:, 0]
        loss = -((1 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is not None:
            loss = loss * self.weight[target]
        return loss.mean()
