"""Self-supervised pre-training on a data set's images, without their labels, for `train --init`.

The network is the same registry model the downstream task builds, so its encoder keeps the downstream
names: classification learns SimCLR's contrastive objective on two augmented views (the head replaced
by a projection MLP), segmentation reconstructs masked patches with the whole U-Net. RUN/model.safetensors
holds the encoder under the model's own names and everything else under ``pretext.``, which --init
reports as unused; the shared training loop gives --epochs / --minutes budgets, log.csv and --resume.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medsight.data.augment import AugmentSettings, BatchAugment
from medsight.errors import MedsightError
from medsight.models import create_model
from medsight.models.parts import in_part, part_prefixes
from medsight.tasks.base import Task
from medsight.tasks.classification.task import ClassificationTask, EpochBatches, augment_generator, shared_order
from medsight.data.patches import PatchBatches
from medsight.tasks.segmentation.task import SegmentationTask
from medsight.data.ranks import per_rank_batch

PRETEXT = "pretext."
PROJECTION_DIM = 128
TEMPERATURE = 0.5  # MONAI's default; SimCLR found 0.1-0.5 best, higher is steadier with small batches
MASK_BLOCK = 8  # side of the masked squares/cubes (voxels) in masked reconstruction
MASK_RATIO = 0.5
VAL_STEPS = 4  # fixed batches the validation loss averages over
VAL_SEED = 12345  # the same validation views every epoch, so val_loss compares across epochs


class PretrainNet(nn.Module):
    """A downstream network plus a pretext module; its state dict names the encoder as the network does."""

    def __init__(self, network: nn.Module, model_name: str, projector: nn.Module | None = None):
        super().__init__()
        self.network, self.projector, self.model_name = network, projector, model_name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.network(x)
        return out if self.projector is None else self.projector(out)

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        encoder = part_prefixes(self.network, "encoder")
        out = OrderedDict()
        for name, value in self.network.state_dict(keep_vars=keep_vars).items():
            out[name if in_part(name, encoder) else (PRETEXT + "network." + name)] = value
        if self.projector is not None:
            for name, value in self.projector.state_dict(keep_vars=keep_vars).items():
                out[PRETEXT + "projector." + name] = value
        return out

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        network, projector = {}, {}
        for name, value in state_dict.items():
            if name.startswith(PRETEXT + "projector."):
                projector[name[len(PRETEXT + "projector."):]] = value
            else:
                network[name[len(PRETEXT + "network."):] if name.startswith(PRETEXT) else name] = value
        result = self.network.load_state_dict(network, strict=strict, assign=assign)
        if self.projector is not None:
            self.projector.load_state_dict(projector, strict=strict, assign=assign)
        return result


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Every rank's rows, concatenated in rank order, with the gradient flowing back to each rank's own rows.

    Every rank computes the same loss of the global batch; the all-gather's backward sums the ranks' gradients
    for each share, and DDP's averaging then gives exactly the gradient of that one loss.
    """
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(local.contiguous()))


def drop_head(network: nn.Module) -> nn.Module:
    """The classifier without its head: it then returns the encoder's features."""
    network.head = nn.Identity()
    return network


def view_augment(plan: dict[str, Any]) -> BatchAugment:
    """Every view warped, a little stronger than supervised training (views must differ, yet stay matchable).

    Twice these ranges kept the loss at chance (log(2B - 1)) for ten epochs on the synthetic lesion images.
    """
    settings = replace(AugmentSettings.from_plan(plan), probability=1.0, scale=(0.85, 1.15), translate=0.075,
                       brightness=0.15, contrast=(0.8, 1.2), noise=0.05)
    return BatchAugment(settings, plan["spatial_dims"])


class ContrastivePretraining(ClassificationTask):
    """SimCLR on classification images: the same image in two views should map close, other images far."""

    objective = "contrastive"
    shares_validation = False  # a few fixed batches of views: cheap enough for rank 0 alone

    def build_model(self, model_name: str) -> nn.Module:
        network = drop_head(super().build_model(model_name))
        network.eval()
        with torch.no_grad():
            features = network(torch.zeros(2, self.plan["in_channels"], *self.plan["input_size"])).flatten(1).shape[1]
        network.train()
        projector = nn.Sequential(nn.Flatten(), nn.Linear(features, features), nn.ReLU(inplace=True),
                                  nn.Linear(features, PROJECTION_DIM))
        return PretrainNet(network, model_name, projector)

    def configure(self, config: Any, dataset) -> None:
        from monai.losses import ContrastiveLoss

        super().configure(config.replace(balance="none"), dataset)
        # no weight average: it serves to pick a supervised epoch on a small validation split, and PretrainNet's
        # own state_dict naming (the downstream model's names) does not nest inside torch's AveragedModel
        self.plan = {**self.plan, "ema_decay": 0.0}
        self.contrastive = ContrastiveLoss(temperature=TEMPERATURE)
        self.views = view_augment(self.plan)

    def train_batches(self, dataset, indices, epoch, seed, rank=0, world_size=1):
        order = shared_order(self.train_labels, self.plan, "none", seed, epoch)[rank::world_size]
        self.view_generator = augment_generator(seed, epoch, rank)  # each rank its own views
        per_rank = per_rank_batch(self.batch_size, world_size)
        return EpochBatches(self.train_images, self.train_labels, order, min(per_rank, len(order)), None)

    def view_loss(self, model: nn.Module, images: torch.Tensor, generator: torch.Generator,
                  across_ranks: bool = False) -> torch.Tensor:
        first, second = self.views(images, generator), self.views(images, generator)
        first, second = model(first.to(self.device)), model(second.to(self.device))
        if across_ranks:
            # SimCLR's negatives are the other images of the global batch, not only of this rank's share
            first, second = gather_with_grad(first), gather_with_grad(second)
        return self.contrastive(first, second)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        import torch.distributed as dist

        loss = self.view_loss(model, batch["image"], self.view_generator,
                              across_ranks=dist.is_initialized() and dist.get_world_size() > 1)
        return {"loss": loss, "output": None}

    def validate(self, model, dataset, indices):
        images = self.prepared(dataset, indices)
        generator = torch.Generator().manual_seed(VAL_SEED)
        size = min(self.batch_size, len(images))
        losses = [float(self.view_loss(model, images[i:i + size], generator))
                  for i in range(0, min(len(images), VAL_STEPS * size) - size + 1, size)]
        loss = float(np.mean(losses))
        return {"val_loss": loss, "score": -loss}

    def finish_training(self, model, dataset, indices):
        return {"pretext": self.objective}


class MaskedReconstruction(SegmentationTask):
    """Masked-image modelling on segmentation patches: blank random blocks, reconstruct them with the U-Net."""

    objective = "masked_reconstruction"
    shares_validation = False

    def build_model(self, model_name: str) -> nn.Module:
        p = self.plan
        network = create_model(model_name, task="segmentation", spatial_dims=p["spatial_dims"],
                               in_channels=p["in_channels"], num_classes=p["in_channels"], kernel_sizes=p["kernel_sizes"],
                               strides=p["strides"], deep_supervision=False)
        return PretrainNet(network, model_name)

    def configure(self, config: Any, dataset) -> None:
        super().configure(config, dataset)
        self.augment = None  # the mask is the corruption; spatial augmentation would only slow this down

    def reconstruction_loss(self, model: nn.Module, images: torch.Tensor, generator: torch.Generator | None = None):
        """Mean squared error on the masked voxels only (the visible ones are trivial to copy)."""
        images = images.to(self.device)
        grid = [max(1, s // MASK_BLOCK) for s in images.shape[2:]]
        coarse = (torch.rand(images.shape[0], 1, *grid, generator=generator) < MASK_RATIO).float()
        mask = nn.functional.interpolate(coarse, size=images.shape[2:], mode="nearest").to(self.device)
        predicted = model(images * (1 - mask))
        return (((predicted - images) ** 2) * mask).sum() / (mask.sum() * images.shape[1]).clamp_min(1.0)

    def training_step(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, Any]:
        return {"loss": self.reconstruction_loss(model, batch["image"]), "output": None}

    def validate(self, model, dataset, indices):
        batches = PatchBatches(self.cache, self.validation_subset(indices), self.plan, self.batch_size, VAL_STEPS, VAL_SEED)
        generator = torch.Generator().manual_seed(VAL_SEED)
        loss = float(np.mean([float(self.reconstruction_loss(model, b["image"], generator)) for b in batches]))
        return {"val_loss": loss, "score": -loss}

    def finish_training(self, model, dataset, indices):
        return {"pretext": self.objective}


PRETEXT_TASKS: dict[str, type[Task]] = {"classification": ContrastivePretraining, "segmentation": MaskedReconstruction}


def pretext_task(task_cls: type[Task]) -> type[Task]:
    """The pre-training task for a downstream task class."""
    if task_cls.name not in PRETEXT_TASKS:
        raise MedsightError(None, f"pretrain supports {', '.join(PRETEXT_TASKS)} data sets, not {task_cls.name}")
    return PRETEXT_TASKS[task_cls.name]
