"""Test-time settings chosen at predict time (`--tta off|mirror`, `--overlap`, `--batch`) instead of in plan.json."""

from __future__ import annotations

import copy
from typing import Any

from medsight.errors import MedsightError

TTA_CHOICES = ("off", "mirror")


def test_time_plan(plan: dict[str, Any], task: str, tta: str | None = None, overlap: float | None = None,
                   batch: int | None = None) -> dict[str, Any]:
    """A copy of plan with the given settings in place of the plan's (None keeps the plan's).

    tta: segmentation's mirroring; overlap: of the sliding windows (segmentation, detection);
    batch: networks' inputs per forward pass (segmentation: windows; classification: images).
    """
    if tta is not None and tta not in TTA_CHOICES:
        raise MedsightError(None, f"--tta must be one of {', '.join(TTA_CHOICES)}, not {tta!r}")
    if overlap is not None and not 0.0 <= overlap < 1.0:
        raise MedsightError(None, f"--overlap must be at least 0 and below 1, not {overlap}")
    if batch is not None and batch < 1:
        raise MedsightError(None, f"--batch must be at least 1, not {batch}")
    out = copy.deepcopy(plan)
    if task == "segmentation":
        inference = out.setdefault("inference", {})
        if tta is not None:
            inference["tta"] = tta == "mirror"
        if overlap is not None:
            inference["overlap"] = float(overlap)
        if batch is not None:
            inference["sw_batch_size"] = int(batch)
        return out
    if task == "classification" and tta is not None:
        out.setdefault("inference", {})["tta"] = tta == "mirror"
    elif tta == "mirror":
        raise MedsightError(None, f"--tta mirror: the {task} task has no test-time mirroring (segmentation and classification have)")
    if task == "detection":
        if overlap is not None:
            out["window_overlap"] = float(overlap)
        if batch is not None:
            raise MedsightError(None, "--batch: detection predicts one window at a time")
    elif task == "classification":
        if overlap is not None:
            raise MedsightError(None, "--overlap: classification takes whole images, there are no windows")
        if batch is not None:
            out.setdefault("inference", {})["batch"] = int(batch)
    return out
