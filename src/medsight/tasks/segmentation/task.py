"""Segmentation: images -> a label map of the same geometry, 2D or 3D, configured from the data as nnU-Net."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.data.dataset import TaskDataset
from medsight.errors import MedsightError
from medsight.losses.segmentation import SegmentationLoss
from medsight.models import create_model
from medsight.tasks.base import Task
from medsight.data.augment import build_augment
from medsight.data.volume_cache import PreprocessedCache
from medsight.tasks.segmentation.data import epoch_batches, training_cache
from medsight.tasks.segmentation.infer import largest_component, sliding_probabilities, to_values
from medsight.tasks.segmentation.plan import make_segmentation_plan
from medsight.tasks.segmentation.evaluate import evaluate_segmentation
from medsight.tasks.segmentation.predict import predict_segmentation
from medsight.tasks.segmentation.regions import RegionLoss, probabilities_as_logits, regions_to_labels
from medsight.tasks.segmentation.threshold import choose_threshold, dice_at_thresholds, level_of, quantise

LCC_MIN_GAIN = 0.0  # keep the largest-component step for a class only when validation Dice does not drop


def dice_per_class(pred: np.ndarray, ref: np.ndarray, classes: Sequence[int]) -> list[float]:
    """Dice of each class; empty in both counts as 1 (as metrics.segmentation, but cheap for per-epoch use)."""
    out = []
    for c in classes:
        p, r = pred == c, ref == c
        total = int(p.sum()) + int(r.sum())
        out.append(1.0 if total == 0 else 2.0 * int((p & r).sum()) / total)
    return out


class SegmentationTask(Task):
    name = "segmentation"

    # data set level ------------------------------------------------------
    @classmethod
    def race_candidates(cls, plan: dict[str, Any]) -> list[dict[str, Any]]:
        from medsight.tasks.segmentation.candidates import race_candidates

        return race_candidates(plan)

    @classmethod
    def make_plan(cls, dataset: TaskDataset, target=None) -> dict[str, Any]:
        return make_segmentation_plan(dataset, target)

    @property
    def foreground(self) -> list[int]:
        return [int(k) for k in self.plan["labels"] if int(k) != 0]

    # training ------------------------------------------------------------
    def build_model(self, model_name: str) -> nn.Module:
        p = self.plan
        outputs = len(p["regions"]) if p.get("regions") else p["num_classes"]  # one sigmoid per region
        return create_model(model_name, task="segmentation", spatial_dims=p["spatial_dims"], in_channels=p["in_channels"],
                            num_classes=outputs, kernel_sizes=p["kernel_sizes"], strides=p["strides"],
                            deep_supervision=p.get("deep_supervision", True))

    def configure(self, config: Any, dataset: TaskDataset | None) -> None:
        super().configure(config, dataset)
        self.loss = RegionLoss(self.plan["regions"]) if self.plan.get("regions") else SegmentationLoss(values=self.foreground + [0])
        self.batch_size = config.batch_size or self.plan["batch_size"]
        self.validate_every = int(self.plan.get("validate_every", 1))
        self.cache: PreprocessedCache | None = None
        if dataset is not None:
            self.cache = training_cache(dataset, self.plan, config.extra.get("cache_dir"))
            self.augment = build_augment(self.plan)

    def train_batches(self, dataset, indices, epoch, seed, rank=0, world_size=1):
        return epoch_batches(self.cache, indices, self.plan, self.batch_size, epoch, seed, rank, world_size,
                             self.augment)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        output = model(batch["image"].to(self.device))
        return {"loss": self.loss(output, batch["label"].to(self.device)), "output": output}

    def validation_subset(self, indices: np.ndarray) -> np.ndarray:
        limit = int(self.plan.get("validation_cases", len(indices)))
        if len(indices) <= limit:
            return np.asarray(indices)
        return np.asarray(indices)[np.linspace(0, len(indices) - 1, limit).astype(int)]

    def cached_predictions(self, model: nn.Module, indices: np.ndarray, with_loss: bool = False):
        """(case, probabilities) on the preprocessed grid of cached cases, without mirroring."""
        for index in indices:
            case = self.cache.get(int(index))
            image = torch.from_numpy(np.array(case.image))
            probs = sliding_probabilities([model], image, self.plan, tta=False, device=self.device)
            yield case, probs

    def to_label(self, probs: torch.Tensor) -> np.ndarray:
        """Probabilities on the grid -> label map: argmax, or the plan's regions painted in order."""
        if self.plan.get("regions"):
            return regions_to_labels(probs, self.plan["regions"])
        return to_values(probs.argmax(0).numpy(), self.plan)

    shares_validation = True

    def validation_part(self, model, dataset, indices, rank, world_size):
        """(loss, Dice per class) of each of this rank's validation cases."""
        part = []
        for case, probs in self.cached_predictions(model, self.validation_subset(indices)[rank::world_size]):
            label = np.asarray(case.label)
            logits = (probabilities_as_logits(probs) if self.plan.get("regions") else torch.log(probs.clamp_min(1e-8)))[None]
            loss = float(self.loss(logits, torch.from_numpy(label.astype(np.int64))[None, None]))
            part.append((loss, dice_per_class(self.to_label(probs), label, self.foreground)))
        return part

    def validate(self, model, dataset, indices):
        return self.reduce_validation([self.validation_part(model, dataset, indices, 0, 1)])

    def reduce_validation(self, parts):
        cases = [case for part in parts for case in part]
        losses, scores = [loss for loss, _ in cases], [dice for _, dice in cases]
        per_class = np.mean(scores, axis=0)
        out = {"val_loss": float(np.mean(losses)), "dice": float(per_class.mean())}
        names = self.plan["labels"]
        out.update({f"dice_{names[str(c)]}": float(v) for c, v in zip(self.foreground, per_class)})
        out["score"] = out["dice"]
        return out

    def finish_training(self, model, dataset, indices):
        """Choose, on the validation cases, a binary task's foreground threshold and then the largest-connected-
        component post-processing per class."""
        if len(indices) == 0:
            return {"postprocessing": {"largest_component": []}}
        binary = not self.plan.get("regions") and len(self.foreground) == 1
        chosen_threshold, plain, kept = {}, [], []

        def score(pred: np.ndarray, label: np.ndarray) -> None:
            plain.append(dice_per_class(pred, label, self.foreground))
            kept.append(dice_per_class(largest_component(pred, self.foreground), label, self.foreground))

        predictions = self.cached_predictions(model, self.validation_subset(indices))
        if not binary:
            for case, probs in predictions:
                score(self.to_label(probs), np.asarray(case.label))
        else:  # two passes over the cases' quantised probabilities, kept on disk (one byte a voxel), not in memory
            with tempfile.TemporaryDirectory(prefix="medsight-threshold-") as folder:
                stored, sweeps = [], []
                for k, (case, probs) in enumerate(predictions):
                    levels = quantise(probs[1])
                    sweeps.append(dice_at_thresholds(levels, np.asarray(case.label) == self.foreground[0]))
                    np.save(Path(folder) / f"{k}.npy", levels)
                    stored.append((case, Path(folder) / f"{k}.npy"))
                chosen_threshold = choose_threshold(sweeps)
                level = level_of(chosen_threshold["foreground_threshold"])
                for case, path in stored:
                    pred = (np.load(path, mmap_mode="r") > level).astype(np.uint8) * np.uint8(self.foreground[0])
                    score(pred, np.asarray(case.label))
        before, after = np.mean(plain, axis=0), np.mean(kept, axis=0)
        chosen = [c for c, b, a in zip(self.foreground, before, after) if a - b > LCC_MIN_GAIN]
        return {"postprocessing": {**chosen_threshold, "largest_component": chosen,
                                   "val_dice_per_class": [float(v) for v in before],
                                   "val_dice_per_class_largest_component": [float(v) for v in after]}}

    # evaluation and inference ----------------------------------------------
    def evaluate(self, run, model, dataset, split, out_dir):
        return evaluate_segmentation(self, run, model, dataset, split, Path(out_dir))

    def predict_files(self, run, models, inputs, out_dir, explain=False, names=None):
        if not models:
            raise MedsightError(getattr(run, "path", None), "no model to predict with")
        return predict_segmentation(self, run, list(models), [Path(p) for p in inputs], Path(out_dir), explain, names)

    def write_prediction_summary(self, run, out_dir, records, failures):
        from medsight.jsonio import save_json

        save_json(Path(out_dir) / "predictions.json", records + [{"input": str(p), "error": e} for p, e in failures])
