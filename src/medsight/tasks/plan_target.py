"""The device a plan is made for: the CPU budgets of medsight, or on a GPU nnU-Net-sized ones from its memory.

nnU-Net v2 plans for 8 GB of GPU memory: in 3D a patch near 128^3 voxels at batch 2, in 2D near 512^2 at batch
12 or more. medsight keeps those reference budgets at 8 GiB and scales the batch's voxels with the GPU's memory
(a 16 GiB GPU takes twice the batch); the patch stays at most nnU-Net's, as its default planner's does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REFERENCE_GIB = 8.0
GPU_PATCH_VOXELS = {2: 512 * 512, 3: 128 * 128 * 128}
GPU_BATCH_VOXELS = {2: 12 * 512 * 512, 3: 2 * 128 * 128 * 128}
GPU_BATCH_RANGE = (2, 64)
GPU_MEMORY_SHARE = 0.85  # what training may use: the CUDA context, cuDNN workspaces and fragmentation take the rest


@dataclass(frozen=True)
class PlanTarget:
    device: str = "cpu"  # "cpu" or "cuda"
    memory_bytes: int | None = None  # the GPU's memory
    name: str = "cpu"

    def record(self) -> dict[str, Any]:
        """What plan.json records under "planned_for"."""
        out: dict[str, Any] = {"device": self.device, "name": self.name}
        if self.memory_bytes is not None:
            out["memory_gib"] = round(self.memory_bytes / 2**30, 1)
        return out


def plan_target(device: str = "auto") -> PlanTarget:
    """The target of --device (medsight.device's rule): the CPU, or a GPU and its memory."""
    import torch

    from medsight.device import resolve_device

    resolved = resolve_device(device, 0)
    if resolved.type != "cuda":
        return PlanTarget()
    props = torch.cuda.get_device_properties(resolved)
    return PlanTarget("cuda", int(props.total_memory), props.name)


def gpu_budgets(spatial_dims: int, memory_bytes: int) -> tuple[int, int, tuple[int, int]]:
    """(patch voxels, batch voxels, batch range) for a GPU with memory_bytes of memory."""
    scale = memory_bytes * GPU_MEMORY_SHARE / (REFERENCE_GIB * 2**30)
    patch = round(GPU_PATCH_VOXELS[spatial_dims] * min(1.0, scale))
    return patch, round(GPU_BATCH_VOXELS[spatial_dims] * scale), GPU_BATCH_RANGE
