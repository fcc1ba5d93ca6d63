"""PyTorch DistributedDataParallel context, read from the variables torchrun sets."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

PROCESS_GROUP_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "DistContext":
        """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, NCCL on GPUs."""
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            backend = "nccl" if torch.cuda.is_available() else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            # generous: rank 1 waits in a barrier while rank 0 preprocesses a whole data set into the cache
            dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
        return cls(rank, world_size, local_rank)

    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def mean(self, value: float) -> float:
        """Average a number over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def gather(self, values: list[float]) -> list[list[float]]:
        """Every rank's values, in rank order, on every rank (all ranks must call it)."""
        if not self.enabled:
            return [list(values)]
        mine = torch.tensor(values, dtype=torch.float64)
        everyone = [torch.zeros_like(mine) for _ in range(self.world_size)]
        dist.all_gather(everyone, mine)
        return [t.tolist() for t in everyone]

    def min_int(self, value: int) -> int:
        """The smallest value over ranks (every rank must take the same number of DDP steps)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.int64)
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return int(tensor.item())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's object on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
