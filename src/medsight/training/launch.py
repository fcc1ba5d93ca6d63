"""`medsight train --nproc N`: run the same command in N processes under torchrun's launcher (PyTorch's own DDP).

The launcher is torch.distributed.run's elastic agent, called in-process so that a failing worker ends in
medsight's one-line message and exit code instead of the agent's multi-line report: rank 0 speaks on the
console, the other ranks' output goes to a log folder that is read back only when one of them fails first.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Sequence


def strip_nproc(argv: Sequence[str]) -> list[str]:
    """argv without --nproc N / --nproc=N (the workers must not launch again)."""
    rest, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            rest.append(arg)
    return rest


def threads_per_process(nproc: int) -> int:
    """Share the machine's cores between the workers rather than oversubscribing them."""
    return max(1, (os.cpu_count() or 1) // nproc)


def launch_torchrun(nproc: int, argv: Sequence[str]) -> int:
    """Run `medsight argv` in nproc DDP processes on this machine; returns the exit code (2 on bad input)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import elastic_launch
    from torch.distributed.run import config_from_args, parse_args

    # the agent logs every worker exit at WARNING/ERROR; the worker's own message is what the user needs
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads_per_process(nproc)))
    with tempfile.TemporaryDirectory(prefix="medsight-ddp-") as log_dir:
        quiet_ranks = ",".join(f"{rank}:3" for rank in range(1, nproc))
        # what torchrun --standalone sets up: a private c10d rendezvous on a free local port
        options = ["--nnodes=1", f"--nproc-per-node={nproc}", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
                   f"--rdzv-id={uuid.uuid4()}", "--log-dir", log_dir]
        if quiet_ranks:
            options += ["--redirects", quiet_ranks]
        config, command, command_args = config_from_args(parse_args([*options, "-m", "medsight", *strip_nproc(argv)]))
        try:
            elastic_launch(config, command)(*command_args)
        except ChildFailedError as exc:
            rank, failure = exc.get_first_failure()
            if exc.failures.get(0) is not None and exc.failures[0].exitcode > 0:
                rank, failure = 0, exc.failures[0]  # rank 0 has already said what is wrong
            if rank != 0:
                print(f"medsight: worker rank {rank} failed (exit code {failure.exitcode}): "
                      f"{last_line(Path(log_dir), failure.local_rank)}", file=sys.stderr)
            return failure.exitcode if failure.exitcode > 0 else 1
    return 0


def last_line(log_dir: Path, local_rank: int) -> str:
    """The last non-empty line a redirected worker wrote to stderr (its one-line error, or a traceback's end)."""
    for path in sorted(log_dir.glob(f"*/attempt_*/{local_rank}/stderr.log")):
        lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if lines:
            return lines[-1].removeprefix("medsight: ")
    return "no message"
