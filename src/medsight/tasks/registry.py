"""Task names to their Task classes, imported on first use so that `import medsight` stays cheap."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from medsight.errors import MedsightError

if TYPE_CHECKING:
    from medsight.tasks.base import Task

_TASKS: dict[str, str] = {
    "classification": "medsight.tasks.classification.task:ClassificationTask",
    "segmentation": "medsight.tasks.segmentation.task:SegmentationTask",
    "detection": "medsight.tasks.detection.task:DetectionTask",
}


def register_task(name: str, target: str) -> None:
    """Make a task known by name; ``target`` is "package.module:TaskClass", imported when first asked for."""
    if ":" not in target:
        raise ValueError(f"task {name!r}: give the class as 'module:Class', not {target!r}")
    _TASKS[name] = target


def task_names() -> list[str]:
    return list(_TASKS)


def get_task(name: str) -> type[Task]:
    """The Task class for a task name."""
    if name not in _TASKS:
        raise MedsightError(None, f"unknown task {name!r}; choose one of {', '.join(_TASKS)}")
    module, cls = _TASKS[name].split(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise MedsightError(None, f"the {name} task is not available in this version") from None
        raise
