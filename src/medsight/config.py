"""Resolved settings of a run (RUN/config.json): what the user asked for, filled in from the plan."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.jsonio import load_json, save_json

BALANCE_CHOICES = ("none", "weights", "sampler", "focal", "smote")
AMP_CHOICES = ("auto", "bf16", "fp16", "off")
FREEZE_CHOICES = ("none", "encoder")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; saved as RUN/config.json, editable and re-runnable."""

    task: str
    data: str
    model: str
    epochs: int | None = None  # None: the plan's default budget
    minutes: float | None = None  # wall-clock budget; the schedule is fixed after the first epoch
    seed: int = 0
    fold: int = 0
    balance: str = "none"
    learning_rate: float | None = None  # None: the model's default
    weight_decay: float = 1e-4
    batch_size: int | None = None  # None: the plan's
    deterministic: bool = False  # --deterministic: deterministic CUDA kernels, no cudnn.benchmark (CPU always is)
    operating_point: str = "balanced_accuracy"  # or "youden", "sensitivity:0.9", "argmax"
    num_workers: int = 0  # --workers: DataLoader processes for patch sampling and augmentation (0: in the loop)
    device: str = "auto"  # --device auto|cpu|cuda[:N] (medsight.device)
    amp: str = "auto"  # --amp auto|bf16|fp16|off: mixed precision on CUDA; the CPU always trains in fp32
    init: str | None = None  # --init: a run folder or .safetensors file whose matching tensors start the model
    freeze: str = "none"  # or "encoder": the pretrained encoder stays fixed
    init_lr_scale: float = 0.1  # learning rate of pretrained tensors relative to new ones
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.balance not in BALANCE_CHOICES:
            raise MedsightError(None, f"--balance must be one of {', '.join(BALANCE_CHOICES)}, not {self.balance!r}")
        if self.freeze not in FREEZE_CHOICES:
            raise MedsightError(None, f"--freeze must be one of {', '.join(FREEZE_CHOICES)}, not {self.freeze!r}")
        if not self.init_lr_scale >= 0:
            raise MedsightError(None, f"--init-lr-scale must be zero or more, not {self.init_lr_scale}")
        if self.amp not in AMP_CHOICES:
            raise MedsightError(None, f"--amp must be one of {', '.join(AMP_CHOICES)}, not {self.amp!r}")
        if self.num_workers < 0:
            raise MedsightError(None, f"--workers must be zero or more, not {self.num_workers}")
        if self.epochs is not None and self.epochs < 1:
            raise MedsightError(None, f"--epochs must be at least 1, not {self.epochs}")
        if self.minutes is not None and self.minutes <= 0:
            raise MedsightError(None, f"--minutes must be positive, not {self.minutes}")

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | Path) -> None:
        save_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        raw = load_json(path)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise MedsightError(path, f"unknown setting(s) {', '.join(unknown)}")
        try:
            return cls(**raw)
        except TypeError as exc:
            raise MedsightError(path, str(exc)) from None
