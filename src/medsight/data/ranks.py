"""What each DDP rank takes of an epoch: its share of the global batch, and its own random streams."""

from __future__ import annotations

import numpy as np


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """The batch rule for every task: the plan's (or --batch-size) batch is the global batch of one step.

    Each of N ranks takes batch_size // N samples (at least one), so the optimiser sees the same batch, the same
    steps per epoch and the same learning rate whatever N is.
    """
    return max(1, int(batch_size) // max(1, world_size))


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
