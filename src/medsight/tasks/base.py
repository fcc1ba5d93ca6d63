"""The contract every task (classification, segmentation, detection) fulfils.

The training loop, the CLI, evaluation and inference only talk to a task through this class, so a new
task adds a subclass (plus its models, losses and metrics) and nothing else. Batches are dicts of
tensors; ``training_step`` returns ``{"loss", "output"}`` so the loop never branches on the task.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.data.dataset import TaskDataset


class Task(ABC):
    """One kind of problem: how to plan, build, train, validate, evaluate and predict."""

    name: ClassVar[str]
    # Validate every N epochs (segmentation validation is costly); the last epoch is always validated.
    validate_every: ClassVar[int] = 1
    # Whether validation splits into parts (validation_part on each DDP rank, then reduce_validation).
    shares_validation: ClassVar[bool] = False

    def __init__(self, plan: dict[str, Any], info: dict[str, Any], device: torch.device | str = "cpu"):
        self.plan = plan
        self.info = info
        self.device = torch.device(device)

    @property
    def preprocessing_plan(self) -> dict[str, Any]:
        """The plan whose preprocessing steps prepare this task's network inputs (export.json records them)."""
        return self.plan

    # data set level ------------------------------------------------------
    @classmethod
    @abstractmethod
    def make_plan(cls, dataset: TaskDataset, target: Any = None) -> dict[str, Any]:
        """Compute the preprocessing/training plan from the data (JSON-able, saved as plan.json).

        target: the device planned for (tasks.plan_target.PlanTarget; None: the CPU).
        """

    @classmethod
    def race_candidates(cls, plan: dict[str, Any]) -> list[dict[str, Any]]:
        """The configurations a --minutes race tries on the data (medsight.training.race), each a dict of
        ``name``, ``model``, ``learning_rate`` (None: the model's default) and ``plan`` (plan entries it changes).

        None offered (the default): `train --minutes` trains the plan's model alone.
        """
        return []

    # training ------------------------------------------------------------
    @abstractmethod
    def build_model(self, model_name: str) -> nn.Module:
        """Create the network from the registry with the plan's arguments."""

    def configure(self, config: Any, dataset: TaskDataset | None) -> None:
        """Take the run's settings (balance, seed...) and, when training, the training data."""
        self.config = config

    @abstractmethod
    def train_batches(self, dataset: TaskDataset, indices: np.ndarray, epoch: int, seed: int,
                      rank: int = 0, world_size: int = 1) -> Iterable[dict[str, Any]]:
        """Batches for one epoch; deterministic given (seed, epoch); each rank gets its own share."""

    @abstractmethod
    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        """Forward and loss on one batch: returns {"loss": scalar tensor, "output": ...}."""

    @abstractmethod
    def validate(self, model: nn.Module, dataset: TaskDataset, indices: np.ndarray) -> dict[str, float]:
        """Metrics on the validation cases; must hold "val_loss" and "score" (higher is better)."""

    def validation_part(self, model: nn.Module, dataset: TaskDataset, indices: np.ndarray, rank: int,
                        world_size: int) -> Any:
        """One rank's share of the validation work (JSON-able or tensors), for reduce_validation."""
        raise NotImplementedError

    def reduce_validation(self, parts: list[Any]) -> dict[str, float]:
        """The metrics of validate() from every rank's validation_part, in rank order."""
        raise NotImplementedError

    def finish_training(self, model: nn.Module, dataset: TaskDataset, indices: np.ndarray) -> dict[str, Any]:
        """After training, with the best weights: state a predictor needs (e.g. operating point)."""
        return {}

    def optimizer(self, model: nn.Module, learning_rate: float, weight_decay: float,
                  groups: list[dict[str, Any]] | None = None) -> torch.optim.Optimizer:
        """AdamW over the model, or over parameter groups (transfer learning: an "lr_scale" per group)."""
        return torch.optim.AdamW(model.parameters() if groups is None else groups, lr=learning_rate,
                                 weight_decay=weight_decay)

    # evaluation and inference ----------------------------------------------
    @abstractmethod
    def evaluate(self, run: Any, model: nn.Module, dataset: TaskDataset, split: str, out_dir: Path) -> dict[str, Any]:
        """Predict the split's cases, write metrics.json, report.html, plots/ and predictions/ to out_dir."""

    @abstractmethod
    def predict_files(self, run: Any, models: Sequence[Any], inputs: Sequence[Path], out_dir: Path,
                      explain: bool = False, names: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Predict image files/folders and write results to out_dir; returns one record per input.

        ``models`` holds one network, or several (folds, seeds) whose probabilities are averaged; each is
        a torch module or an ONNX engine that takes and returns tensors the same way. ``names``: the output
        name of each input (default: unique stems of the inputs).
        """

    def write_prediction_summary(self, run: Any, out_dir: Path, records: list[dict[str, Any]],
                                 failures: list[tuple[Path, str]]) -> None:
        """The summary file of a prediction over many inputs, from every case's records (and the failed ones)."""
