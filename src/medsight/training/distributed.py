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
    def from_env(cls, cuda: bool | None = None) -> "DistContext":
        """Join the process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, NCCL on GPUs.

        cuda: whether the processes train on GPUs (None: whenever CUDA is available, as --device auto).
        """
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls()
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            on_gpu = torch.cuda.is_available() if cuda is None else cuda
            backend = "nccl" if on_gpu else "gloo"
            if backend == "nccl":
                torch.cuda.set_device(local_rank)
            # generous: rank 1 waits in a barrier while rank 0 preprocesses a whole data set into the cache
            dist.init_process_group(backend=backend, timeout=PROCESS_GROUP_TIMEOUT)
        return cls(rank, world_size, local_rank)

    def device(self, spec: str = "auto") -> torch.device:
        """This process's device for --device spec (medsight.device's rule)."""
        from medsight.device import resolve_device

        return resolve_device(spec, self.local_rank)

    def _collective_device(self) -> torch.device:
        # NCCL reduces tensors on the process's GPU only; gloo on the CPU
        if self.enabled and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    def mean(self, value: float) -> float:
        """Average a number over ranks."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self._collective_device())
        dist.all_reduce(tensor)
        return float(tensor.item()) / self.world_size

    def min_int(self, value: int) -> int:
        """The smallest value over ranks (every rank must take the same number of DDP steps)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([value], dtype=torch.int64, device=self._collective_device())
        dist.all_reduce(tensor, op=dist.ReduceOp.MIN)
        return int(tensor.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's object, in rank order, on every rank (validation parts, each rank's loss and time)."""
        if not self.enabled:
            return [obj]
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, obj)
        return parts

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
