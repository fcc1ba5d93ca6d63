"""Image-level regression as a medsight plugin: one number per image (an age, a score, a volume).

The data: a folder with ``targets.csv`` (columns ``path,target,split``; paths relative to the folder, split
train/val/test) beside its images. Use it with ``MEDSIGHT_PLUGINS=medsight_regression`` and this file on
the Python path; see docs/adding-a-task.md.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.data.dataset import TaskDataset
from medsight.errors import MedsightError
from medsight.io.formats import register_format
from medsight.io.images import read_image
from medsight.jsonio import save_json
from medsight.models import create_model, register_model
from medsight.models.parts import Classifier
from medsight.tasks.base import Task
from medsight.tasks.registry import register_task

COLUMNS = ("path", "target", "split")


# 1. the data: a reader that returns a TaskDataset, and a sniffer that recognises the folder
@dataclass
class RegressionDataset(TaskDataset):
    files: list[Path] = field(default_factory=list)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))

    def load_case(self, index: int) -> np.ndarray:
        return read_image(self.files[index]).array.astype(np.float32)  # (C, *spatial)


def read_targets(path: Path, fmt: str, seed: int = 0, fold: int = 0) -> RegressionDataset:
    table = path / "targets.csv"
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not set(COLUMNS) <= set(rows[0]):
        raise MedsightError(table, f"needs the columns {', '.join(COLUMNS)}")
    try:
        targets = np.array([float(row["target"]) for row in rows], np.float32)
    except ValueError as exc:
        raise MedsightError(table, f"has a target that is not a number ({exc})") from None
    splits = {s: np.array([i for i, row in enumerate(rows) if row["split"] == s], int) for s in ("train", "val", "test")}
    files = [path / row["path"] for row in rows]
    return RegressionDataset(path=path, format=fmt, task="regression", spatial_dims=read_image(files[0]).spatial_dims,
                             splits=splits, case_ids=[f.stem for f in files], files=files, targets=targets)


register_format("regression_csv", "regression", lambda path: path.is_dir() and (path / "targets.csv").is_file(),
                read_targets)


# 2. a model in the registry, with its parts named (so --init and --freeze encoder work on it)
@register_model("tiny_regressor", task="regression", spatial_dims=(2,), description="two convolutions, one output")
def tiny_regressor(spatial_dims: int, in_channels: int) -> nn.Module:
    encoder = nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(encoder, nn.Linear(8, 1))


# 3. the task: plan, batches, loss, validation, evaluation and prediction
class RegressionTask(Task):
    name = "regression"

    @classmethod
    def make_plan(cls, dataset: RegressionDataset, target: Any = None) -> dict[str, Any]:
        train = dataset.splits["train"]
        pixels = np.concatenate([dataset.load_case(i).ravel() for i in train])
        targets = dataset.targets[train]
        return {"task": cls.name, "model": "tiny_regressor", "epochs": 20, "batch_size": 8,
                "spatial_dims": dataset.spatial_dims, "in_channels": int(dataset.load_case(int(train[0])).shape[0]),
                "intensity": [float(pixels.mean()), float(pixels.std() or 1.0)],
                "target": [float(targets.mean()), float(targets.std() or 1.0)]}

    def build_model(self, model_name: str) -> nn.Module:
        return create_model(model_name, task=self.name, spatial_dims=self.plan["spatial_dims"],
                            in_channels=self.plan["in_channels"])

    def prepare(self, image: np.ndarray) -> torch.Tensor:
        mean, std = self.plan["intensity"]
        return torch.from_numpy((image - mean) / std).float()

    def configure(self, config: Any, dataset: RegressionDataset | None) -> None:
        super().configure(config, dataset)
        if dataset is not None:  # training: every case prepared once, in memory
            self.images = {i: self.prepare(dataset.load_case(i)) for i in range(len(dataset))}

    def train_batches(self, dataset, indices, epoch, seed, rank=0, world_size=1):
        generator = torch.Generator().manual_seed(seed * 1_000 + epoch)
        order = np.asarray(indices)[torch.randperm(len(indices), generator=generator).numpy()][rank::world_size]
        size = int(self.plan["batch_size"])
        mean, std = self.plan["target"]
        return [{"image": torch.stack([self.images[int(i)] for i in order[s:s + size]]),
                 "target": torch.from_numpy((dataset.targets[order[s:s + size]] - mean) / std).float()}
                for s in range(0, len(order), size)]

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        output = model(batch["image"].to(self.device))[:, 0]
        return {"loss": nn.functional.mse_loss(output, batch["target"].to(self.device)), "output": output}

    def predict_images(self, models: Sequence[Any], images: Sequence[torch.Tensor]) -> np.ndarray:
        """Targets in their own unit; several models (an ensemble) are averaged."""
        mean, std = self.plan["target"]
        batch = torch.stack(list(images)).to(self.device)
        with torch.no_grad():
            outputs = torch.stack([model(batch)[:, 0] for model in models]).mean(0)
        return outputs.cpu().numpy() * std + mean

    def scores(self, predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        error = predicted - truth
        spread = float(((truth - truth.mean()) ** 2).sum())
        return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
                "r2": 1.0 - float((error ** 2).sum()) / spread if spread > 0 else float("nan")}

    def validate(self, model, dataset, indices) -> dict[str, float]:
        predicted = self.predict_images([model], [self.images[int(i)] for i in indices])
        metrics = self.scores(predicted, dataset.targets[indices])
        return {"val_loss": float(((predicted - dataset.targets[indices]) ** 2).mean()),
                "val_mae": metrics["mae"], "score": -metrics["mae"]}

    def evaluate(self, run, model, dataset, split, out_dir: Path) -> dict[str, Any]:
        indices = dataset.splits[split]
        predicted = self.predict_images([model], [self.prepare(dataset.load_case(int(i))) for i in indices])
        out_dir.mkdir(parents=True, exist_ok=True)
        with open(out_dir / "predictions.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["case", "target", "prediction"])
            writer.writerows(zip([dataset.case_ids[i] for i in indices], dataset.targets[indices], predicted))
        result = {"task": self.name, "split": split, "num_cases": len(indices),
                  "metrics": self.scores(predicted, dataset.targets[indices])}
        save_json(out_dir / "metrics.json", result)
        return result

    def predict_files(self, run, models, inputs, out_dir: Path, explain: bool = False,
                      names=None) -> list[dict[str, Any]]:
        predicted = self.predict_images(models, [self.prepare(read_image(p).array.astype(np.float32)) for p in inputs])
        return [{"input": str(p), "prediction": float(v)} for p, v in zip(inputs, predicted)]

    def write_prediction_summary(self, run, out_dir: Path, records, failures) -> None:
        save_json(out_dir / "predictions.json", records)  # every input's record, once all are predicted


register_task("regression", f"{__name__}:RegressionTask")
