"""The foreground threshold of a binary segmentation, chosen on the validation cases.

The argmax of two softmax channels is a threshold of 0.5 on the foreground probability. For thin or small
structures (vessels, small lesions) the best Dice often lies elsewhere: the loss balances false positives and
false negatives differently from Dice. One scalar, chosen by the mean Dice of the validation cases over a coarse
grid, is the cheap correction that vessel-segmentation work applies; it is kept only when it beats 0.5 by
MIN_GAIN, so a run whose validation cannot tell the thresholds apart keeps the argmax.

The sweep reads each case's foreground probability once, quantised to 256 levels (one byte a voxel), and counts
predicted and true-positive voxels per level, so every threshold's Dice comes from two cumulative histograms.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

THRESHOLDS = tuple(round(0.1 + 0.05 * k, 2) for k in range(17))  # 0.10, 0.15, ..., 0.90
MIN_GAIN = 0.002  # mean validation Dice a threshold must add over 0.5 to replace the argmax
LEVELS = 255


def quantise(foreground: torch.Tensor | np.ndarray) -> np.ndarray:
    """Foreground probabilities in [0, 1] -> uint8 levels 0..255."""
    p = foreground.numpy() if isinstance(foreground, torch.Tensor) else np.asarray(foreground)
    return np.rint(np.clip(p, 0.0, 1.0) * LEVELS).astype(np.uint8)


def level_of(threshold: float) -> int:
    """Voxels with a level above this one count as foreground at the threshold (0.5 -> 127: p > 0.5)."""
    return int(np.floor(threshold * LEVELS))


def dice_at_thresholds(levels: np.ndarray, truth: np.ndarray, thresholds: Sequence[float] = THRESHOLDS) -> np.ndarray:
    """Dice of one case at each threshold; empty prediction and empty truth count as 1."""
    truth = np.asarray(truth, dtype=bool)
    everything = np.bincount(levels.ravel(), minlength=LEVELS + 1)
    positives = np.bincount(levels[truth].ravel(), minlength=LEVELS + 1)
    above_all = np.cumsum(everything[::-1])[::-1]  # above_all[k]: voxels at level >= k
    above_pos = np.cumsum(positives[::-1])[::-1]
    reference = int(truth.sum())
    out = []
    for t in thresholds:
        k = level_of(t) + 1
        predicted = int(above_all[k]) if k <= LEVELS else 0
        hits = int(above_pos[k]) if k <= LEVELS else 0
        total = predicted + reference
        out.append(1.0 if total == 0 else 2.0 * hits / total)
    return np.asarray(out)


def choose_threshold(per_case: Sequence[np.ndarray], thresholds: Sequence[float] = THRESHOLDS) -> dict:
    """The threshold with the best mean validation Dice, or 0.5 when it does not gain MIN_GAIN over 0.5."""
    mean = np.mean(np.stack(per_case), axis=0)
    at_half = float(mean[list(thresholds).index(0.5)])
    best = int(np.argmax(mean))
    chosen = float(thresholds[best]) if mean[best] - at_half > MIN_GAIN else 0.5
    return {"foreground_threshold": chosen, "val_dice_at_half": at_half,
            "val_dice_at_threshold": float(mean[list(thresholds).index(chosen)]),
            "val_dice_by_threshold": {f"{t:g}": round(float(d), 6) for t, d in zip(thresholds, mean)}}


def binary_label(foreground: torch.Tensor, threshold: float) -> np.ndarray:
    """uint8 label map (0/1) of a foreground probability map."""
    return (foreground > threshold).numpy().astype(np.uint8)
