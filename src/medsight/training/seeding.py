"""Seeds: every source of randomness is reset from (seed, epoch, rank) (medsight.data.ranks), so a resumed run
replays exactly; deterministic kernels."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


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
