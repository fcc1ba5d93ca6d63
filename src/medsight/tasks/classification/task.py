"""Classification: images -> one class (or K binary labels), 2D or 3D."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from medsight.data.augment import AugmentSettings, BatchAugment, mirror_sets
from medsight.data.dataset import TaskDataset
from medsight.data.input_cache import check_fits_in_memory
from medsight.data.preprocess import bounded_range, decode_size, prepare_many
from medsight.data.ranks import epoch_seed, per_rank_batch, rank_seed
from medsight.data.steps import planned_steps
from medsight.errors import MedsightError
from medsight.io.images import read_image
from medsight.losses.classification import ClassificationLoss, inverse_frequency_weights
from medsight.metrics.operating_point import choose_operating_point
from medsight.models import create_model
from medsight.tasks.base import Task
from medsight.tasks.classification.evaluate import evaluate_classification
from medsight.tasks.classification.predict import predict_classification, write_summary

# Largest input the plan picks by default on CPU; a user can raise it in plan.json.
MAX_INPUT_2D, MAX_INPUT_3D = 128, 64
# Photographs many times larger (fundus, dermoscopy: median side >= LARGE_PHOTO_SIDE) get LARGE_INPUT_2D: a
# lesion a hundred pixels wide in a 4,288 px photograph is three pixels at 128 and six at 256.
LARGE_PHOTO_SIDE, LARGE_INPUT_2D = 1024, 256
EVAL_BATCH = 256


def read_input(path: Path, plan: dict[str, Any]) -> np.ndarray:
    """The (C, *spatial) array of one input file as training, evaluation and prediction read it."""
    return read_image(path, reduce_to=decode_size(plan)).array


STATISTICS_SIDE = 256  # images are thinned to about this side for the plan's intensity statistics


def thinned(image: np.ndarray) -> np.ndarray:
    """Every k-th pixel, so that the longest side is about STATISTICS_SIDE (a copy, not a view)."""
    step = max(1, max(image.shape[1:]) // STATISTICS_SIDE)
    return np.array(image[(slice(None), *[slice(None, None, step)] * (image.ndim - 1))])


# The registry model that gave the best accuracy per CPU-second in benchmarks/classification, 2D and 3D.
DEFAULT_MODEL = "resnet18_half"


MIN_STEPS_PER_EPOCH = 16
EMA_EPOCHS = 2


def default_batch_size(spatial_dims: int, input_size: Sequence[int]) -> int:
    voxels = int(np.prod(input_size))
    budget = 128 * 28 * 28 if spatial_dims == 2 else 32 * 28**3
    return int(np.clip(2 ** int(np.log2(max(1, budget // voxels))), 4, 128))


def preprocessing_steps(spatial_dims: int) -> list[dict[str, Any]]:
    """The plan's steps; the extra ones are offered but off (classification data sets name no modality)."""
    # crop off: the whole image is the input (fundus photographs with black borders may gain from it)
    return planned_steps("classification", {
        "crop_nonzero": (False, "off: the whole image is the input"),
        "n4_bias_field": (False, "off: the data set names no modality; switch on for MR images")},
        n4_bias_field={"shrink_factor": 4 if spatial_dims == 3 else 2})


class EpochBatches:
    """One epoch of augmented training batches (a sized iterable, so the loop knows the step count)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, order: torch.Tensor, batch_size: int,
                 augment: BatchAugment | None, generator: torch.Generator | None = None, mixup: float = 0.0):
        self.images, self.labels, self.order = images, labels, order
        self.batch_size, self.augment, self.generator = batch_size, augment, generator
        self.mixup = float(mixup)

    def __len__(self) -> int:
        return max(1, len(self.order) // self.batch_size)  # drop the ragged last batch: BatchNorm needs > 1

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for step in range(len(self)):
            index = self.order[step * self.batch_size:(step + 1) * self.batch_size]
            x = self.images[index]
            if self.augment is not None:
                x = self.augment(x, self.generator)
            batch = {"image": x, "label": self.labels[index]}
            if self.mixup > 0:
                batch = mix_batch(batch, self.mixup, self.generator)
            yield batch


def mix_batch(batch: dict[str, torch.Tensor], alpha: float, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Mixup (Zhang et al. 2018): the batch blended with a shuffled copy of itself by a Beta(alpha, alpha) weight.

    On a few hundred small images the validation score peaks after a few epochs and then falls as the network
    memorises them; training on blends of pairs, with the loss blended by the same weight, delays that.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    lam = max(lam, 1.0 - lam)  # the first image dominates, so its label stays the main target
    partner = torch.randperm(len(batch["label"]), generator=generator)
    image = batch["image"]
    return {"image": lam * image + (1.0 - lam) * image[partner], "label": batch["label"],
            "mix_label": batch["label"][partner], "mix_weight": torch.tensor(lam)}


class ClassificationTask(Task):
    name = "classification"

    # data set level ------------------------------------------------------
    @classmethod
    def race_candidates(cls, plan: dict[str, Any]) -> list[dict[str, Any]]:
        from medsight.tasks.classification.candidates import race_candidates

        return race_candidates(plan)

    @classmethod
    def make_plan(cls, dataset: TaskDataset, target=None) -> dict[str, Any]:  # CPU budgets on any device
        train = dataset.splits["train"]
        sample = train[np.linspace(0, len(train) - 1, min(len(train), 200)).astype(int)]
        shapes, images = [], []
        sources = getattr(dataset, "sources", None) if getattr(dataset, "images", None) is None else None
        for index in sample:  # one image at a time: only a thinned copy is kept for the statistics
            if sources is not None and dataset.spatial_dims == 2:
                from medsight.io.images import picture_shape

                # statistics of the image as training will decode it; the shape from the file's header
                image = read_input(sources[int(index)], {"spatial_dims": 2, "input_size": [MAX_INPUT_2D] * 2})
                shapes.append(picture_shape(sources[int(index)]) or image.shape[1:])
            else:
                image = dataset.load_case(int(index))
                shapes.append(image.shape[1:])
            images.append(thinned(image))
        shapes = np.array(shapes)
        median = np.median(shapes, axis=0)
        limit = MAX_INPUT_3D if dataset.spatial_dims == 3 else (
            LARGE_INPUT_2D if np.median(median) >= LARGE_PHOTO_SIDE else MAX_INPUT_2D)
        side = int(min(limit, np.median(median)))
        input_size = [side] * dataset.spatial_dims
        channels = int(np.bincount([im.shape[0] for im in images]).argmax())
        low, high = bounded_range(images)
        plan = {"in_channels": channels, "input_size": input_size, "normalization": {"clip": [low, high]}}
        clipped = [np.clip(np.asarray(im, dtype=np.float32), low, high) for im in images]
        per_channel = [np.concatenate([c[ch].ravel() for c in clipped if c.shape[0] > ch]) for ch in range(channels)]
        plan["normalization"]["mean"] = [float(v.mean()) for v in per_channel]
        plan["normalization"]["std"] = [float(max(v.std(), 1e-6)) for v in per_channel]
        counts = dataset.class_counts(train)
        batch = default_batch_size(dataset.spatial_dims, input_size)
        while batch > 8 and len(train) // batch < MIN_STEPS_PER_EPOCH:
            batch //= 2  # a small data set still gets enough optimiser steps (and EMA updates) per epoch
        steps_per_epoch = max(1, len(train) // batch)
        return {
            "task": "classification",
            "spatial_dims": dataset.spatial_dims,
            "median_shape": [float(v) for v in median],
            "preprocessing": {"steps": preprocessing_steps(dataset.spatial_dims)},
            **plan,
            "num_classes": len(dataset.classes),
            "multilabel": dataset.multilabel,
            # ordered grades: quadratic kappa is reported, and can choose the epoch and the operating point
            "ordinal": bool(getattr(dataset, "ordinal", False)) and not dataset.multilabel,
            "selection_metric": "auc",
            "class_counts": counts,
            "class_weights": inverse_frequency_weights(counts),
            "batch_size": batch,
            # about 3000 optimiser steps in all, at least 10 and at most 200 epochs
            "epochs": int(np.clip(3000 // steps_per_epoch, 10, 200)),
            # the weights validated and kept are an average over about the last EMA_EPOCHS epochs of steps
            "ema_decay": float(np.clip(1.0 - 1.0 / (EMA_EPOCHS * steps_per_epoch), 0.9, 0.999)),
            "model": DEFAULT_MODEL,
            "augment": {"flip_axes": [1] if dataset.spatial_dims == 2 else [0, 1, 2], "rotate_degrees": 15.0,
                        "scale": [0.9, 1.1], "translate": 0.1, "brightness": 0.1, "contrast": [0.9, 1.1],
                        "noise": 0.0, "probability": 0.8},
        }

    # training ------------------------------------------------------------
    def build_model(self, model_name: str) -> nn.Module:
        p = self.plan
        return create_model(model_name, task="classification", spatial_dims=p["spatial_dims"],
                            in_channels=p["in_channels"], num_classes=p["num_classes"], input_size=p["input_size"][0])

    def configure(self, config: Any, dataset: TaskDataset | None) -> None:
        super().configure(config, dataset)
        check_selection(self.plan, self.ordinal)
        balance = config.balance
        weights = self.plan["class_weights"] if balance == "weights" else None
        self.loss = ClassificationLoss("focal" if balance == "focal" else "ce", weights, self.plan["multilabel"]).to(self.device)
        self.augment = BatchAugment(AugmentSettings.from_plan(self.plan), self.plan["spatial_dims"])
        self.batch_size = config.batch_size or self.plan["batch_size"]
        self._cache: dict[str, torch.Tensor] = {}
        if dataset is not None:
            if getattr(dataset, "sources", None) is not None and getattr(dataset, "images", None) is None:
                self.input_cache(dataset).ensure(np.arange(len(dataset)))  # every split in one pass, with progress
            train = dataset.splits["train"]
            self.train_images = self.prepared(dataset, train)
            self.train_labels = torch.as_tensor(dataset.labels[train])
            if balance == "smote":
                images = self.train_images
                images = images.materialise() if hasattr(images, "materialise") else images
                self.train_images, self.train_labels = smote(images, self.train_labels, config.seed)

    def export_inputs(self, dataset: TaskDataset, indices: np.ndarray) -> torch.Tensor:
        """The prepared images of some cases as one tensor: what ONNX export checks the network on."""
        rows = self.prepared(dataset, indices)
        return rows if isinstance(rows, torch.Tensor) else rows[np.arange(len(rows))]

    def prepared(self, dataset: TaskDataset, indices: np.ndarray) -> torch.Tensor:
        """Normalised inputs of the cases: in memory for in-memory sets, else rows of the input cache on disk."""
        key = f"{id(dataset)}:{hash(np.asarray(indices).tobytes())}"
        if key not in self._cache:
            if getattr(dataset, "sources", None) is not None and getattr(dataset, "images", None) is None:
                self._cache[key] = self.input_cache(dataset).rows(indices)
            else:
                shape = (len(indices), self.plan["in_channels"], *self.plan["input_size"])
                check_fits_in_memory(4 * int(np.prod(shape)), f"preparing {len(indices)} images", dataset.path)
                self._cache[key] = prepare_many(dataset.load_case, indices, self.plan)
        return self._cache[key]

    def input_cache(self, dataset: TaskDataset):
        from medsight.data.input_cache import InputCache

        if getattr(self, "_input_cache", None) is None or self._input_cache.sources != list(dataset.sources):
            extra = getattr(getattr(self, "config", None), "extra", None) or {}
            root = extra.get("cache_dir")
            sources, plan = list(dataset.sources), self.plan
            self._input_cache = InputCache(sources, lambda i: read_input(sources[i], plan), plan,
                                           Path(root) if root else None)
        return self._input_cache

    def train_batches(self, dataset, indices, epoch, seed, rank=0, world_size=1):
        order = shared_order(self.train_labels, self.plan, self.config.balance, seed, epoch)
        order = order[rank::world_size]  # the same permutation on every rank, disjoint shares
        # each rank takes its share of the batch, so a step sees the same samples as in one process
        per_rank = per_rank_batch(self.batch_size, world_size)
        return EpochBatches(self.train_images, self.train_labels, order, min(per_rank, len(order)), self.augment,
                            augment_generator(seed, epoch, rank), mixup=float(self.plan.get("mixup", 0.0)))

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        logits = model(batch["image"].to(self.device, non_blocking=True))
        loss = self.loss(logits, batch["label"].to(self.device))
        if "mix_weight" in batch:  # mixup: the loss against each image's label, blended as the images were
            lam = float(batch["mix_weight"])
            loss = lam * loss + (1.0 - lam) * self.loss(logits, batch["mix_label"].to(self.device))
        return {"loss": loss, "output": logits}

    @property
    def test_time_flips(self) -> list[tuple[int, ...]]:
        """The mirrorings a prediction averages over: every subset of the flips training used, when the plan's
        inference.tta is on (plans written before it was planned have none)."""
        if not self.plan.get("inference", {}).get("tta", False):
            return [()]
        return mirror_sets(self.plan.get("augment", {}).get("flip_axes", []))

    @torch.no_grad()
    def predict_tensor(self, model: nn.Module, images: torch.Tensor, tta: bool = True) -> torch.Tensor:
        """Logits for a (N, C, *input) tensor, in batches; with tta, the mean of the logits over test_time_flips."""
        model.eval()
        size = int(self.plan.get("inference", {}).get("batch", EVAL_BATCH))  # predict --batch
        flips = self.test_time_flips if tta else [()]

        def logits(x: torch.Tensor) -> torch.Tensor:
            x = x.to(self.device)
            return torch.stack([model(x.flip([2 + a for a in f]) if f else x).float() for f in flips]).mean(0).cpu()

        outs = [logits(images[i:i + size]) for i in range(0, len(images), size)]
        return torch.cat(outs) if outs else torch.empty(0, self.plan["num_classes"])

    def probabilities(self, logits: torch.Tensor) -> np.ndarray:
        return (torch.sigmoid(logits) if self.plan["multilabel"] else torch.softmax(logits, 1)).numpy()

    shares_validation = True

    def validation_part(self, model, dataset, indices, rank, world_size):
        mine = np.asarray(indices)[rank::world_size]
        # no mirroring here: the per-epoch score keeps its cost; the operating point and evaluation use the plan's
        return self.predict_tensor(model, self.prepared(dataset, mine), tta=False), torch.as_tensor(dataset.labels[mine])

    def reduce_validation(self, parts):
        logits, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        return self.validation_metrics(logits, labels)

    def validate(self, model, dataset, indices):
        return self.reduce_validation([self.validation_part(model, dataset, indices, 0, 1)])

    def validation_metrics(self, logits: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        from sklearn.metrics import balanced_accuracy_score

        from medsight.metrics.classification import selection_auc

        probs = self.probabilities(logits)
        out = {"val_loss": float(self.loss(logits.to(self.device), labels.to(self.device)))}
        auc = selection_auc(labels.numpy(), probs, self.plan["multilabel"])
        if not self.plan["multilabel"]:
            out["accuracy"] = float((probs.argmax(1) == labels.numpy()).mean())
            out["balanced_accuracy"] = float(balanced_accuracy_score(labels.numpy(), probs.argmax(1)))
        if auc is not None:
            out["auc"] = auc
        if self.ordinal:
            from medsight.metrics.ordinal import quadratic_kappa

            out["kappa_quadratic"] = quadratic_kappa(labels.numpy(), probs.argmax(1), probs.shape[1])
        # AUC ranks every threshold, so by default it picks the epoch before the operating point is chosen; over
        # the classes present, so a class missing from validation keeps the score an AUC
        out["score"] = selection_score(out, self.plan.get("selection_metric", "auc"))
        return out

    @property
    def ordinal(self) -> bool:
        """Ordered grades: as plan.json says, else as the data set's dataset.json says."""
        return bool(self.plan.get("ordinal", self.info.get("ordinal", False)))

    def finish_training(self, model, dataset, indices):
        if len(indices) == 0:
            point = {"rule": "argmax"}
            if self.plan["multilabel"]:
                point["thresholds"] = [0.5] * self.plan["num_classes"]
            return {"operating_point": point}
        probs = self.probabilities(self.predict_tensor(model, self.prepared(dataset, indices)))
        return {"operating_point": choose_operating_point(dataset.labels[indices], probs, self.config.operating_point)}

    # evaluation and inference ----------------------------------------------
    def evaluate(self, run, model, dataset, split, out_dir):
        return evaluate_classification(self, run, model, dataset, split, Path(out_dir))

    def predict_files(self, run, models, inputs, out_dir, explain=False, names=None):
        return predict_classification(self, run, list(models), inputs, Path(out_dir), explain, names)

    def write_prediction_summary(self, run, out_dir, records, failures):
        write_summary(self, run, Path(out_dir), records, failures)


def shared_order(labels: torch.Tensor, plan: dict[str, Any], balance: str, seed: int, epoch: int) -> torch.Tensor:
    """The epoch's order of the training cases, the same on every DDP rank (drawn from (seed, epoch) alone)."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    if balance == "sampler" and not plan["multilabel"]:
        weights = torch.tensor(plan["class_weights"], dtype=torch.float64)[labels]
        return torch.multinomial(weights, len(labels), replacement=True, generator=generator)
    return torch.randperm(len(labels), generator=generator)


def augment_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    """The generator of a rank's augmentation for an epoch: ranks draw different warps, a resume the same."""
    return torch.Generator().manual_seed(rank_seed(seed, epoch, rank, stream=1))


SELECTION_METRICS = ("auc", "kappa_quadratic", "qwk", "balanced_accuracy", "accuracy", "val_loss")


def check_selection(plan: dict[str, Any], ordinal: bool) -> None:
    """A selection_metric that the plan's task can compute, else one line naming plan.json."""
    name = plan.get("selection_metric", "auc")
    if name not in SELECTION_METRICS:
        raise MedsightError("plan.json", f"selection_metric {name!r} is not one of {', '.join(SELECTION_METRICS)}")
    if name in ("qwk", "kappa_quadratic") and not ordinal:
        raise MedsightError("plan.json", f"selection_metric {name!r} needs ordered grades: set \"ordinal\": true")


def selection_score(metrics: dict[str, float], name: str) -> float:
    """The validation figure that chooses the epoch (higher is better; val_loss is negated)."""
    key = "kappa_quadratic" if name == "qwk" else name
    if key == "val_loss":
        return -metrics["val_loss"]
    if key in metrics:
        return metrics[key]
    # AUC is undefined when a validation split lacks a class: balanced accuracy, then the loss
    return metrics.get("balanced_accuracy", -metrics["val_loss"])


def smote(images: torch.Tensor, labels: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Oversample minority classes with SMOTE (imbalanced-learn) in normalised image space."""
    from imblearn.over_sampling import SMOTE

    counts = torch.bincount(labels)
    smallest = int(counts[counts > 0].min())
    if smallest < 2 or labels.ndim != 1:
        return images, labels
    sampler = SMOTE(k_neighbors=min(5, smallest - 1), random_state=seed)
    flat, new_labels = sampler.fit_resample(images.reshape(len(images), -1).numpy(), labels.numpy())
    return torch.from_numpy(flat.reshape(-1, *images.shape[1:])).float(), torch.from_numpy(new_labels).long()


def read_input_image(path: Path) -> np.ndarray:
    """A file or a DICOM series folder -> (C, *spatial) array, with the reader's one-line errors."""
    return read_image(path).array
