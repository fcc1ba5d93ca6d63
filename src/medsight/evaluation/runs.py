"""`medsight evaluate RUN`: one trained run scored on a split of its data set (or of another folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from medsight.errors import MedsightError
from medsight.io.formats import read_dataset
from medsight.run import load_run


def evaluate_run(run_path: str | Path, data: str | Path | None = None, split: str = "test",
                 nsd_tolerance: float | Sequence[float] | None = None) -> dict[str, Any]:
    """Evaluate a run on a split of its data set -> RUN/eval/<split>/metrics.json and report.html.

    nsd_tolerance (segmentation): NSD tolerance in mm, one number or one per foreground class, instead of the
    plan's ``evaluation.nsd_tolerance_mm``.
    """
    run, task, model = load_run(run_path)
    set_nsd_tolerance(task, nsd_tolerance, run.path)
    config = run.load_config()
    source = data or config.data
    dataset = read_dataset(source, config.seed, config.fold)
    if split not in dataset.splits:
        raise MedsightError(source, f"has no split {split!r} (it has {', '.join(dataset.splits)})")
    return task.evaluate(run, model, dataset, split, run.eval_dir(split))


def set_nsd_tolerance(task: Any, tolerance: float | Sequence[float] | None, where: Any) -> None:
    """Override the plan's NSD tolerance for this evaluation (segmentation runs only)."""
    if tolerance is None:
        return
    if task.info.get("task") != "segmentation":
        raise MedsightError(where, f"is a {task.info.get('task')} run; --nsd-tolerance applies to segmentation")
    task.plan.setdefault("evaluation", {})["nsd_tolerance_mm"] = tolerance
