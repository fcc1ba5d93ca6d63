"""The configurations a classification --minutes race tries (medsight.training.race): members of the ResNet
family, from the half-width ResNet-18 the plan defaults to (the best accuracy per CPU-second measured in
benchmarks/classification) to ResNet-34, and the default network at three times its learning rate."""

from __future__ import annotations

from typing import Any


def race_candidates(plan: dict[str, Any]) -> list[dict[str, Any]]:
    default = plan["model"]
    return [
        {"name": default, "model": default, "learning_rate": None, "plan": {}},
        {"name": f"{default}_lr3e-3", "model": default, "learning_rate": 3e-3, "plan": {}},
        {"name": "resnet18", "model": "resnet18", "learning_rate": None, "plan": {}},
        {"name": "resnet34", "model": "resnet34", "learning_rate": None, "plan": {}},
    ]
