"""Seeds: every source of randomness is reset from (seed, epoch, rank), so a resumed run replays exactly."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed every rank shares for an epoch (the shuffled order of the training cases)."""
    return (seed * 100_003 + epoch * 7_919) % (2**31 - 1)


def rank_seed(seed: int, epoch: int, rank: int, worker: int = 0, stream: int = 0) -> int:
    """A DDP rank's (and a data worker's) own seed for an epoch: augmentation, dropout, patch sampling.

    stream separates independent uses within one process (the global RNG, the augmentation generator).
    Rank 0's global RNG gets epoch_seed itself, so a one-process run's dropout draws what it always drew.
    """
    if rank == 0 and worker == 0 and stream == 0:
        return epoch_seed(seed, epoch)
    return int(np.random.SeedSequence([seed, epoch, rank, worker, stream]).generate_state(1)[0]) % (2**31 - 1)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(enabled: bool, device: torch.device | str = "cpu") -> None:
    """Deterministic kernels when asked (and always on the CPU, where they cost nothing); else cudnn.benchmark.

    cudnn.benchmark times the convolution algorithms for each new input shape and keeps the fastest: patches
    have a fixed shape, so on a GPU it pays after the first steps, but the chosen algorithms may differ between
    runs, so --deterministic switches it off.
    """
    if enabled or torch.device(device).type == "cpu":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True
