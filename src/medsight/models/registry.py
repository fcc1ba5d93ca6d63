"""Names to model builders (as timm's register_model / create_model / list_models).

A builder takes keyword arguments that the task supplies from the plan, e.g. for classification
``spatial_dims, in_channels, num_classes, input_size``; variants are data, not copied classes. Every model
exposes its ``encoder`` and ``head`` (and a U-Net its ``decoder``): see ``medsight.models.parts``.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable

import torch.nn as nn

from medsight.errors import MedsightError
from medsight.plugins import load_plugins


@dataclass(frozen=True)
class ModelEntry:
    name: str
    task: str
    builder: Callable[..., nn.Module]
    spatial_dims: tuple[int, ...]
    description: str
    default_lr: float = 1e-3


_REGISTRY: dict[str, ModelEntry] = {}

# Modules that register models when imported; kept explicit (no folder crawling).
_MODEL_MODULES = (
    "medsight.models.classic",
    "medsight.models.resnet",
    "medsight.models.efficient",
    "medsight.models.segmentation",
    "medsight.models.detection",
)


def register_model(
    name: str, task: str, spatial_dims: tuple[int, ...] = (2, 3), description: str = "", default_lr: float = 1e-3,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register builder under name for task."""

    def wrap(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        doc = description or ((builder.__doc__ or "").strip().splitlines() or [""])[0]
        _REGISTRY[name] = ModelEntry(name, task, builder, tuple(spatial_dims), doc, default_lr)
        return builder

    return wrap


def _load_all() -> None:
    load_plugins()  # a plugin's models as well as medsight's own
    for module in _MODEL_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency, not a task that is not there yet
                raise


def list_models(task: str | None = None) -> list[ModelEntry]:
    """Registered models, optionally of one task, sorted by name."""
    _load_all()
    return sorted((e for e in _REGISTRY.values() if task in (None, e.task)), key=lambda e: (e.task, e.name))


def get_entry(name: str, task: str | None = None) -> ModelEntry:
    _load_all()
    entry = _REGISTRY.get(name)
    if entry is None or (task is not None and entry.task != task):
        names = ", ".join(e.name for e in list_models(task))
        raise MedsightError(None, f"unknown model {name!r}{' for ' + task if task else ''}; choose one of: {names}")
    return entry


def create_model(name: str, task: str | None = None, **kwargs) -> nn.Module:
    """Build a registered model; kwargs are the task's plan-derived arguments."""
    entry = get_entry(name, task)
    dims = kwargs.get("spatial_dims")
    if dims is not None and dims not in entry.spatial_dims:
        raise MedsightError(None, f"model {name!r} supports {entry.spatial_dims}D inputs, not {dims}D")
    accepted = inspect.signature(entry.builder).parameters
    unknown = sorted(k for k in kwargs if k not in accepted)
    if unknown:
        raise MedsightError("plan.json", f"model {name!r} takes no {unknown[0]!r} (it takes "
                                         f"{', '.join(accepted)})")
    return entry.builder(**kwargs)
