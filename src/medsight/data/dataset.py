"""What a reader returns: a data set's cases, their splits and what they mean, for any task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsight.data.splits import describe


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
    groups: list[str | None] | None = None  # the patient of each case, where the data names one
    split_info: dict[str, Any] = field(default_factory=dict)  # where the splits come from (medsight.data.splits)
    # the ids the source file gives its classes and cases (COCO's category and image ids), so that results
    # are written in them and score against the user's own file; empty where the format numbers nothing
    category_ids: list[Any] = field(default_factory=list)
    image_ids: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.case_ids)

    def summary(self) -> dict[str, Any]:
        """What `medsight check` prints: format, task, cases, classes, shapes, spacing..."""
        return {
            "path": str(self.path), "format": self.format, "task": self.task, "spatial_dims": self.spatial_dims,
            "cases": len(self), "splits": {k: int(len(v)) for k, v in self.splits.items()},
            "channels": self.channels, "classes": self.classes, "split": describe(self),
        }

    def info(self) -> dict[str, Any]:
        """What RUN/dataset.json records (names, channels, the split used) so a predictor needs no data."""
        return {
            "source": str(self.path), "format": self.format, "task": self.task, "spatial_dims": self.spatial_dims,
            "channels": self.channels, "classes": self.classes,
            **({"category_ids": self.category_ids} if self.category_ids else {}),
            "splits": {k: [self.case_ids[i] for i in v] for k, v in self.splits.items()},
            "split": {k: v for k, v in describe(self).items() if k != "cases"},
        }
