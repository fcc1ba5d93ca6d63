"""`medsight evaluate RUN`: one trained run scored on a split of its data set (or of another folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.io.formats import read_dataset
from medsight.run import load_run


def evaluate_run(run_path: str | Path, data: str | Path | None = None, split: str = "test") -> dict[str, Any]:
    """Evaluate a run on a split of its data set -> RUN/eval/<split>/metrics.json and report.html."""
    run, task, model = load_run(run_path)
    config = run.load_config()
    source = data or config.data
    dataset = read_dataset(source, config.seed, config.fold)
    if split not in dataset.splits:
        raise MedsightError(source, f"has no split {split!r} (it has {', '.join(dataset.splits)})")
    return task.evaluate(run, model, dataset, split, run.eval_dir(split))
