"""What a reader returns: a data set's cases, their splits and what they mean, for any task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class TaskDataset:
    """A data set read from disk: its cases, their splits and what they mean.

    Subclasses hold the cases (arrays in memory or file paths) and implement ``load_case``.
    ``splits`` maps a split name ("train", "val", "test", ...) to integer case indices.
    """

    path: Path
    format: str  # "medmnist", "imagefolder", "csv", "nnunet", "coco", "voc", "nndetection"
    task: str
    spatial_dims: int
    splits: dict[str, np.ndarray]
    case_ids: list[str]
    channels: list[str] = field(default_factory=lambda: ["image"])
    classes: list[str] = field(default_factory=list)  # class / label names (segmentation: including background)

    def __len__(self) -> int:
        return len(self.case_ids)

    def summary(self) -> dict[str, Any]:
        """What `medsight check` prints: format, task, cases, classes, shapes, spacing..."""
        return {
            "path": str(self.path), "format": self.format, "task": self.task, "spatial_dims": self.spatial_dims,
            "cases": len(self), "splits": {k: int(len(v)) for k, v in self.splits.items()},
            "channels": self.channels, "classes": self.classes,
        }

    def info(self) -> dict[str, Any]:
        """What RUN/dataset.json records (names, channels, the split used) so a predictor needs no data."""
        return {
            "source": str(self.path), "format": self.format, "task": self.task, "spatial_dims": self.spatial_dims,
            "channels": self.channels, "classes": self.classes,
            "splits": {k: [self.case_ids[i] for i in v] for k, v in self.splits.items()},
        }
