"""A training step that cannot fit in memory ends the run with one line, not with the kernel's kill.

What grows with the batch and the patch is what autograd saves for the backward pass. The first step of a run
on the CPU trains under a saved-tensor hook that counts those bytes as the forward pass makes them and reads the
memory still available every CHECK_EVERY bytes: when it falls under the floor, the forward pass stops with a
MedsightError naming the sizes to lower. After the forward pass, the backward pass needs room for the gradients
of the activations (about half of the saved bytes at once, freed as it goes). A GPU raises its own catchable
out-of-memory error, so the guard is for the CPU, where the kernel kills without a word.
"""

from __future__ import annotations

from pathlib import Path

import torch

from medsight.data.memory import available_memory_bytes
from medsight.errors import MedsightError

CHECK_EVERY = 64 * 2**20
FLOOR_BYTES = 256 * 2**20  # what the rest of the process and the system keep using during the step
BACKWARD_SHARE = 0.5


class StepMemoryGuard:
    """Context manager around a training step's forward pass; ``after_forward`` checks the backward's room."""

    def __init__(self, path: Path | None, advice: str, available=None, floor: int = FLOOR_BYTES):
        self.path, self.advice, self.floor = path, advice, floor
        self.available = available or (lambda: available_memory_bytes())
        self.saved = 0
        self._checked = 0
        self._hooks = None

    def _refuse(self, free: int, needed: str) -> None:
        raise MedsightError(self.path, f"a training step does not fit in memory: {free / 2**30:.2f} GB left after "
                                       f"{self.saved / 2**30:.2f} GB of activations, {needed}; {self.advice}")

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        self.saved += tensor.numel() * tensor.element_size()
        if self.saved - self._checked >= CHECK_EVERY:
            self._checked = self.saved
            free = self.available()
            if free is not None and free < self.floor:
                self._refuse(free, "still in the forward pass")
        return tensor

    def __enter__(self) -> "StepMemoryGuard":
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> bool:
        self._hooks.__exit__(*exc)
        return False

    def after_forward(self) -> None:
        free = self.available()
        if free is not None and free < self.floor + BACKWARD_SHARE * self.saved:
            self._refuse(free, f"the backward pass needs about {BACKWARD_SHARE * self.saved / 2**30:.2f} GB more")


class NoGuard:
    """The steps after the first, and GPU steps: nothing counted."""

    def __enter__(self) -> "NoGuard":
        return self

    def __exit__(self, *exc) -> bool:
        return False

    def after_forward(self) -> None:
        pass


def step_guard(first_step: bool, device: torch.device | str, path: Path | None) -> StepMemoryGuard | NoGuard:
    if not first_step or torch.device(device).type != "cpu":
        return NoGuard()
    return StepMemoryGuard(path, "lower batch_size or patch_size / input_size in plan.json (or --batch-size)")
