"""The configurations a detection --minutes race tries (medsight.training.race): the plan's one-stage RetinaNet,
the two-stage Faster R-CNN on the same small ResNet-10 + FPN, and RetinaNet on ResNet-18."""

from __future__ import annotations

from typing import Any


def race_candidates(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": plan["model"], "model": plan["model"], "learning_rate": None, "plan": {}},
        {"name": "faster_rcnn", "model": "faster_rcnn", "learning_rate": None, "plan": {}},
        {"name": "retinanet_resnet18", "model": "retinanet_resnet18", "learning_rate": None, "plan": {}},
    ]
