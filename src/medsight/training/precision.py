"""Mixed precision (`--amp auto|bf16|fp16|off`): bf16 autocast where the GPU supports it, fp16 with a gradient
scaler, fp32 on the CPU (bf16 matrix products are many times slower than fp32 on CPUs without AMX)."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager

import torch

from medsight.errors import MedsightError


def amp_dtype(spec: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for --amp on device; None for fp32."""
    if spec not in ("auto", "bf16", "fp16", "off"):
        raise MedsightError(None, f"--amp must be auto, bf16, fp16 or off, not {spec!r}")
    if device.type != "cuda" or spec == "off":
        return None
    bf16_ok = torch.cuda.is_bf16_supported()
    if spec == "bf16" and not bf16_ok:
        raise MedsightError(None, f"--amp bf16: {torch.cuda.get_device_name(device)} has no bf16; use --amp fp16")
    if spec == "auto":
        return torch.bfloat16 if bf16_ok else torch.float16
    return torch.bfloat16 if spec == "bf16" else torch.float16


class Precision:
    """Autocast for the forward pass and, for fp16, a GradScaler for the backward pass (state in checkpoint.pt)."""

    def __init__(self, spec: str, device: torch.device):
        self.device, self.dtype = device, amp_dtype(spec, device)
        # bf16 has fp32's exponent range: gradients do not underflow, so only fp16 needs loss scaling
        self.scaler = torch.amp.GradScaler("cuda") if self.dtype == torch.float16 else None

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def autocast(self) -> ContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true scale before clipping them."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.scaler is None:
            optimizer.step()
        else:  # skips the step when the scaled gradients overflowed, and lowers the scale
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any] | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
