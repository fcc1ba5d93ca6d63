"""The configurations a segmentation --minutes race tries (medsight.training.race).

On two CPU cores MONAI's residual UNet ran five times more iterations a minute than DynUNet at 16-128 filters
on hippocampus and was ahead at 15 minutes (0.860 against 0.839 Dice, benchmarks/segmentation), so the race
weighs the plan's network against that UNet at two learning rates and at twice the batch (more samples per
step, half the steps a minute); a GPU plan races nnU-Net's full-width DynUNet instead of the twice-larger batch.
"""

from __future__ import annotations

from typing import Any


def race_candidates(plan: dict[str, Any]) -> list[dict[str, Any]]:
    on_gpu = plan.get("planned_for", {}).get("device") == "cuda"
    return [
        {"name": "unet", "model": "unet", "learning_rate": 1e-3, "plan": {}},
        {"name": "unet_lr3e-3", "model": "unet", "learning_rate": 3e-3, "plan": {}},
        {"name": "dynunet" if on_gpu else "unet_batch2x", "model": "dynunet" if on_gpu else "unet",
         "learning_rate": 1e-3, "plan": {} if on_gpu else {"batch_size": 2 * int(plan["batch_size"])}},
        {"name": plan["model"], "model": plan["model"], "learning_rate": None, "plan": {}},
    ]
