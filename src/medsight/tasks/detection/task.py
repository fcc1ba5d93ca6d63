"""Detection: images -> boxes with classes and scores, 2D (COCO, Pascal VOC) and 3D (nnDetection raw)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medsight.data.dataset import TaskDataset
from medsight.data.steps import Prepared, as_float_tensor
from medsight.jsonio import save_json
from medsight.metrics.detection import DetectionMetric
from medsight.models import create_model
from medsight.tasks.base import Task
from medsight.tasks.detection.data import Case, EpochBatches, prepare_record
from medsight.tasks.detection.cache import box_kinds, training_boxes
from medsight.tasks.detection.evaluate import evaluate_detection
from medsight.tasks.detection.predict import predict_detection
from medsight.tasks.detection.export import export_agreement, export_inputs, export_module
from medsight.tasks.detection.infer import detect_prepared
from medsight.tasks.detection.plan import make_detection_plan
from medsight.tasks.detection.tiling import read_case_near_scale
from medsight.tasks.detection.world import WorldCases, cache_plan, luna16_scores
from medsight.data.ranks import per_rank_batch

VALIDATION_CASES = 40  # validation during training looks at this many cases at most (it runs every epoch)


class DetectionTask(Task):
    name = "detection"

    @classmethod
    def race_candidates(cls, plan: dict[str, Any]) -> list[dict[str, Any]]:
        from medsight.tasks.detection.candidates import race_candidates

        return race_candidates(plan)

    @classmethod
    def make_plan(cls, dataset: TaskDataset, target=None) -> dict[str, Any]:  # CPU budgets on any device
        return make_detection_plan(dataset)

    # training ------------------------------------------------------------
    def build_model(self, model_name: str) -> nn.Module:
        p = self.plan
        return create_model(model_name, task="detection", spatial_dims=p["spatial_dims"], in_channels=p["in_channels"],
                            num_classes=p["num_classes"], anchor_shapes=p["anchor_shapes"],
                            feature_map_scales=p["feature_map_scales"], stem_stride=p["stem_stride"],
                            max_pool=p["max_pool"])

    def configure(self, config: Any, dataset: TaskDataset | None) -> None:
        super().configure(config, dataset)
        self.batch_size = config.batch_size or self.plan["batch_size"]
        # 3D validation runs sliding windows over whole volumes: every other epoch (the last one always)
        self.validate_every = 2 if self.plan["spatial_dims"] == 3 else 1
        self._prepared: dict[int, Any] = {}
        self.world = None
        if dataset is not None:
            self.cache_cases(dataset, [*dataset.splits["train"], *dataset.splits.get("val", [])])
            self.train_cases = [self.prepared(dataset, int(i)) for i in dataset.splits["train"]]

    def cache_cases(self, dataset: TaskDataset, indices) -> None:
        """Prepare the cases not on disk yet in one go, before they are read one by one: one progress line for
        the set (training, or a split to evaluate), not one per case."""
        if "target_spacing" in self.plan:
            self.world_cases(dataset).cache.ensure(indices)
        elif getattr(dataset, "sources", None):
            self.prepared_cases(dataset).ensure(indices)

    def world_cases(self, dataset: TaskDataset):
        """The on-disk cache of a world-unit plan (made on first use when evaluating without training)."""
        if getattr(self, "world", None) is None or self.world.dataset is not dataset:
            extra = getattr(getattr(self, "config", None), "extra", {}) or {}
            self.world = WorldCases(dataset, self.plan, extra.get("cache_dir"))
        return self.world

    @property
    def preprocessing_plan(self) -> dict[str, Any]:
        """A world-unit plan's scans are resampled and normalised by the volume cache's steps."""
        return cache_plan(self.plan) if "target_spacing" in self.plan else self.plan

    def prepared(self, dataset: TaskDataset, index: int):
        """A case normalised and scaled as the plan says: kept in memory (float16), or under a world-unit
        plan resampled into the on-disk cache and read memory-mapped."""
        if "target_spacing" in self.plan:
            return self.world_cases(dataset).case(index)
        if getattr(dataset, "sources", None):
            return self.prepared_cases(dataset).case(index)
        if not hasattr(self, "_prepared"):  # a data set without files (built in memory): kept in memory
            self._prepared = {}
        if index not in self._prepared:
            image, source_shape = read_case_near_scale(dataset, index, self.plan)  # a JPEG decoded near the scale
            record = prepare_record(image, self.plan, source_shape)
            boxes, labels = training_boxes(dataset, index)  # the targets: ignored boxes left out
            self._prepared[index] = Case(as_float_tensor(record.image).half(), record.map_boxes(boxes), labels,
                                         record.history)
        return self._prepared[index]

    def prepared_cases(self, dataset: TaskDataset):
        """The on-disk cache of prepared cases (made on first use when evaluating without training)."""
        from medsight.tasks.detection.cache import PreparedCache

        cache = self.__dict__.get("_prepared_cache")
        if cache is None or cache.dataset is not dataset:
            extra = getattr(getattr(self, "config", None), "extra", {}) or {}
            cache = self._prepared_cache = PreparedCache(dataset, self.plan, extra.get("cache_dir"))
        return cache

    def train_batches(self, dataset, indices, epoch, seed, rank=0, world_size=1):
        stream = int(seed) * 100_003 + epoch * 1_009 + rank
        steps = max(1, int(self.plan["iterations_per_epoch"]))  # the plan's batch is global: each rank its share
        return EpochBatches(self.train_cases, self.plan, per_rank_batch(self.batch_size, world_size), steps, stream)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        targets = [{"boxes": b.to(self.device), "labels": l.to(self.device)} for b, l in zip(batch["boxes"], batch["labels"])]
        losses = model(batch["image"].to(self.device), targets)
        return {"loss": sum(losses.values()), "output": {k: float(v.detach()) for k, v in losses.items()}}

    def predict_case(self, models: list[Any], dataset: TaskDataset, index: int) -> dict[str, np.ndarray]:
        """Boxes of one data set case in its original voxel coordinates."""
        case = self.prepared(dataset, index)
        if "target_spacing" in self.plan:
            found = detect_prepared(models, case.image, self.plan, self.device)
            ratio = self.world_cases(dataset).ratio(index)
            found["boxes"] = found["boxes"] / np.concatenate([ratio, ratio])
            return found
        image = case.image if isinstance(case.image, np.ndarray) else case.image.float()  # memory-mapped or in memory
        found = detect_prepared(models, image, self.plan, self.device)
        found["boxes"] = Prepared(None, (), history=case.steps).invert_boxes(found["boxes"])
        return found

    def score_cases(self, models: list[Any], dataset: TaskDataset, indices: np.ndarray) -> tuple[dict[str, Any], list]:
        metric = DetectionMetric(self.plan["num_classes"], list(self.info.get("classes", [])) or None)
        self.cache_cases(dataset, [int(i) for i in indices])
        predictions = []
        for index in indices:
            found = self.predict_case(models, dataset, int(index))
            metric.update(found["boxes"], found["scores"], found["labels"], dataset.boxes[index], dataset.labels[index],
                          spacing=self.case_spacing(dataset, int(index)), gt_ignore=box_kinds(dataset, int(index)))
            predictions.append(found)
        result = metric.compute()
        if "target_spacing" in self.plan and getattr(dataset, "geometries", None):
            # LUNA16's rule replaces the IoU one: a hit is a predicted centre within a nodule's radius (mm)
            luna = luna16_scores(dataset, indices, predictions)
            result["metrics"].update(froc=luna["sensitivity"], cpm=luna["cpm"], froc_rule="luna16")
            result["curves"]["froc"] = {"fp_per_image": luna["curve"]["fp_per_scan"], "sensitivity": luna["curve"]["sensitivity"]}
        return result, predictions

    def case_spacing(self, dataset: TaskDataset, index: int) -> tuple[float, ...] | None:
        """Voxel spacing in array-axis order (3D scans, for FROC in mm); None in 2D (FROC in pixels)."""
        if self.plan["spatial_dims"] != 3:
            return None
        cache = self.__dict__.setdefault("_spacings", {})
        if index not in cache:
            cache[index] = tuple(float(v) for v in reversed(dataset.load_geometry(index).spacing))
        return cache[index]

    def validate(self, model, dataset, indices):
        most = int(self.plan.get("validation_cases", VALIDATION_CASES))  # plan.json can lower it for huge scans
        chosen = np.asarray(indices)[np.linspace(0, len(indices) - 1, min(len(indices), most)).astype(int)]
        result, _ = self.score_cases([model], dataset, chosen)
        m = result["metrics"]
        # 3D picks by CPM (LUNA16), 2D by mAP@0.5; both saturate on a few validation images, and then the
        # tighter boxes (mAP@0.5 behind CPM, mAP@[.5:.95] last) break the tie between epochs
        tight = 1e-3 * m["map_50_95"]
        score = m["cpm"] + 1e-3 * (m["map_50"] + tight) if self.plan["spatial_dims"] == 3 else m["map_50"] + tight
        # detection picks its epoch by mAP / CPM on whole images; a loss there would double validation time (the
        # detectors compute their losses only in training mode), so there is no val_loss (log.csv leaves it empty)
        return {"map_50": m["map_50"], "map_50_95": m["map_50_95"], "cpm": m["cpm"],
                "score": 0.0 if not np.isfinite(score) else float(score)}

    # evaluation and inference ----------------------------------------------
    def evaluate(self, run, model, dataset, split, out_dir):
        return evaluate_detection(self, run, model, dataset, split, Path(out_dir))

    # export (ONNX): the dense part, checked on prepared cases and by the boxes decoded from it ----------
    def export_module(self, model: nn.Module) -> nn.Module:
        return export_module(model)

    def export_inputs(self, dataset: TaskDataset, indices: np.ndarray) -> torch.Tensor:
        return export_inputs(self, dataset, indices)

    def export_agreement(self, model: nn.Module, engine: Any, inputs: torch.Tensor) -> dict[str, Any]:
        return export_agreement(model, engine, inputs)

    def predict_files(self, run, models, inputs, out_dir, explain=False, names=None):
        return predict_detection(self, run, list(models), inputs, Path(out_dir), names)

    def write_prediction_summary(self, run, out_dir, records, failures):
        save_json(Path(out_dir) / "results.json", [box for r in records for box in r.get("detections", [])])
