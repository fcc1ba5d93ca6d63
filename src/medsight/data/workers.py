"""Training batches made in DataLoader worker processes (`--workers N`), identical to those made in process.

A task's epoch of batches that has ``batch(step)`` (segmentation and detection patches: sampling, cropping and
per-sample augmentation) is split by step: worker w of N makes steps w, w + N, ..., and the DataLoader hands
them back in step order. Each step seeds itself from (seed, epoch, rank, step), so the batches, and a
``--resume``, do not depend on N. Classification augments whole batches with one batched warp in the training
process, where workers would only add copying.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info


class _StepsOfWorker(IterableDataset):
    def __init__(self, batches: Any):
        self.batches = batches

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        return (self.batches.batch(step) for step in range(worker, len(self.batches), workers))


class WorkerBatches:
    """batches (sized, with batch(step)) made by `workers` DataLoader processes; a sized iterable too."""

    def __init__(self, batches: Any, workers: int, pin_memory: bool = False):
        self.batches, self.workers, self.pin_memory = batches, workers, pin_memory

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        # batch_size=None: the task's batches are already batches; in-order delivery keeps step order
        loader = DataLoader(_StepsOfWorker(self.batches), batch_size=None, num_workers=self.workers,
                            pin_memory=self.pin_memory, prefetch_factor=2)
        return iter(loader)


def in_workers(batches: Any, workers: int, device: torch.device) -> Any:
    """batches as they are (workers == 0, or a task that makes whole batches in process), else WorkerBatches."""
    if workers <= 0 or not callable(getattr(batches, "batch", None)) or not hasattr(batches, "__len__"):
        return batches
    return WorkerBatches(batches, min(workers, len(batches)), pin_memory=device.type == "cuda")
