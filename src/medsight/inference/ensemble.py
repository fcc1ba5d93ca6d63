"""Several runs of one task used together: plan agreement, input adaptation and a shared operating point."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.errors import MedsightError
from medsight.run import RunFolder

# Plan entries that only steer training; runs may differ in them and still be ensembled.
# settings that do not change what a model outputs ("evaluation": how its outputs are scored)
TRAINING_ONLY = {"epochs", "batch_size", "class_counts", "class_weights", "model", "augment", "median_shape", "evaluation",
                 "learning_rate", "race", "iterations_per_epoch", "oversample_foreground", "deep_supervision", "mixup"}
# dataset.json entries that must agree: what the outputs mean and what the inputs are.
INFO_KEYS = ("task", "classes", "spatial_dims", "channels", "multilabel")


def plan_differences(first: dict[str, Any], other: dict[str, Any]) -> list[str]:
    """Plan keys (outside training-only settings) whose values differ."""
    return sorted(k for k in set(first) | set(other) if k not in TRAINING_ONLY and first.get(k) != other.get(k))


def is_zscore(norm: Any) -> bool:
    return isinstance(norm, dict) and set(norm) >= {"clip", "mean", "std"}


class Renormalize(nn.Module):
    """Turns inputs normalised with one plan's clip/mean/std into those another plan expects.

    Folds of one data set get slightly different statistics; undoing the first z-score, clipping to the
    member's range and applying its z-score is exact whenever the clip ranges agree (8-bit data sets).
    """

    def __init__(self, source: dict[str, Any], target: dict[str, Any], spatial_dims: int):
        super().__init__()
        shape = (1, -1) + (1,) * spatial_dims
        for name, norm in (("source", source), ("target", target)):
            self.register_buffer(f"{name}_mean", torch.tensor(norm["mean"], dtype=torch.float32).view(shape))
            self.register_buffer(f"{name}_std", torch.tensor(norm["std"], dtype=torch.float32).view(shape))
        self.low, self.high = (float(v) for v in target["clip"])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = (x * self.source_std + self.source_mean).clamp(self.low, self.high)
        return (raw - self.target_mean) / self.target_std


def check_members(loaded: Sequence[tuple[RunFolder, Any]]) -> list[Renormalize | None]:
    """Fail unless the runs predict the same thing from the same inputs; per run, the input adapter needed."""
    first_run, first_task = loaded[0]
    adapters: list[Renormalize | None] = [None]
    for run, task in loaded[1:]:
        for key in INFO_KEYS:
            if first_task.info.get(key) != task.info.get(key):
                raise MedsightError(run.path, f"cannot be ensembled with {first_run.path}: its {key} "
                                              f"{task.info.get(key)!r} differs from {first_task.info.get(key)!r}")
        differ = plan_differences(first_task.plan, task.plan)
        norm_a, norm_b = first_task.plan.get("normalization"), task.plan.get("normalization")
        if "normalization" in differ and is_zscore(norm_a) and is_zscore(norm_b):
            differ.remove("normalization")
            adapters.append(Renormalize(norm_a, norm_b, int(task.plan.get("spatial_dims", 2))))
        else:
            adapters.append(None)
        if differ:
            raise MedsightError(run.path, f"cannot be ensembled with {first_run.path}: plan.json differs in "
                                          f"{', '.join(differ)}")
    return adapters


def combine_operating_points(points: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """One operating point for averaged probabilities: the mean of the members' thresholds or offsets.

    Members chosen by different rules, or some without a point, fall back to argmax (said in "note").
    """
    points = [p for p in points if p]
    if not points:
        return {"rule": "argmax"}
    if len(points) == 1:
        return dict(points[0])
    rules = {p.get("rule") for p in points}
    for key in ("threshold", "thresholds", "log_offsets", "grade_cuts"):
        if all(key in p for p in points) and len(rules) == 1:
            values = np.mean([np.asarray(p[key], dtype=np.float64) for p in points], axis=0)
            combined = {k: v for k, v in points[0].items() if k not in (key, "val", "labels_at_default")}
            combined[key] = values.tolist()
            combined["note"] = f"mean of {len(points)} runs' {key}"
            return combined
    if rules == {"argmax"}:
        return {"rule": "argmax"}
    return {"rule": "argmax", "note": f"runs chose different rules ({', '.join(sorted(map(str, rules)))}): argmax used"}


class EnsembleRun(RunFolder):
    """The first member's run folder, whose state carries the ensemble's combined operating point."""

    def __init__(self, members: Sequence[RunFolder]):
        super().__init__(members[0].path)
        self.members = list(members)

    def load_state(self) -> dict[str, Any]:
        states = [RunFolder(m.path).load_state() for m in self.members]
        point = combine_operating_points([s.get("operating_point") for s in states])
        return {**states[0], "operating_point": point, "ensemble": [str(Path(m.path)) for m in self.members]}
