"""Where a command runs: one rule for `--device auto|cpu|cuda[:N]` in train, evaluate, predict, export and serve."""

from __future__ import annotations

import os
import re

import torch

from medsight.errors import MedsightError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"


def resolve_device(spec: str | None = "auto", local_rank: int | None = None) -> torch.device:
    """The torch device for --device.

    auto: the GPU when CUDA is available, else the CPU. Under DDP (local_rank given) `auto` and a bare `cuda`
    mean the process's own GPU, cuda:LOCAL_RANK; an explicit cuda:N is taken as asked.
    """
    spec = (spec or "auto").strip().lower()
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", spec)
    if match is None:
        raise MedsightError(None, f"--device must be {DEVICE_CHOICES}, not {spec!r}")
    if not torch.cuda.is_available():
        raise MedsightError(None, f"--device {spec}: this PyTorch sees no CUDA GPU (use --device cpu or auto)")
    index = int(match.group(1)) if match.group(1) is not None else local_rank
    if index >= torch.cuda.device_count():
        raise MedsightError(None, f"--device {spec}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    return torch.device("cuda", index)
