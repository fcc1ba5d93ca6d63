"""`medsight train --nproc N`: re-launch the same command under torchrun (PyTorch's own DDP launcher)."""

from __future__ import annotations

import subprocess
import sys
from typing import Sequence


def torchrun_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The torchrun command line for one machine with nproc processes (argv without --nproc)."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        rest.append(arg)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "medsight", *rest]


def launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    return subprocess.call(torchrun_command(nproc, argv))
