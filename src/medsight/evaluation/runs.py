"""`medsight evaluate RUN`: one trained run scored on a split of its data set (or of another folder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from medsight.data.splits import as_test_set
from medsight.errors import MedsightError
from medsight.io.formats import read_dataset
from medsight.jsonio import load_json, save_json
from medsight.report.training import add_training_record
from medsight.run import load_run


def evaluation_data(config, data: str | Path | None = None, info: dict[str, Any] | None = None):
    """The data set a run is evaluated on: its own (with its splits), or a folder given as a test set
    (masks paired by name are then read with the values the run was trained on: info, its dataset.json)."""
    if data is None or Path(data).resolve() == Path(config.data).resolve():
        return read_dataset(config.data, config.seed, config.fold)
    dataset = read_dataset(data, config.seed, 0)
    if getattr(dataset, "mask_coding", None) is not None and info and info.get("mask_coding"):
        from medsight.io.mask_values import adopt_coding

        adopt_coding(dataset, info)
    as_test_set(dataset)  # every case is scored, unless the folder names its own test split
    return dataset


def record_scored(out_dir: Path, dataset, split: str) -> dict[str, Any]:
    """Say in metrics.json which cases were scored: the split, how many, and where the split came from."""
    scored = {"split": split, "cases": int(len(dataset.splits[split])),
              "origin": dataset.split_info.get("origin", "data"), "data": str(dataset.path)}
    metrics_path = Path(out_dir) / "metrics.json"
    if metrics_path.is_file():
        save_json(metrics_path, {**load_json(metrics_path), "scored": scored})
    return scored


def evaluate_run(run_path: str | Path, data: str | Path | None = None, split: str = "test",
                 nsd_tolerance: float | Sequence[float] | None = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate a run on a split of its data set -> RUN/eval/<split>/metrics.json and report.html.

    nsd_tolerance (segmentation): NSD tolerance in mm, one number or one per foreground class, instead of the
    plan's ``evaluation.nsd_tolerance_mm``.
    """
    run, task, model = load_run(run_path, device)
    set_nsd_tolerance(task, nsd_tolerance, run.path)
    config = run.load_config()
    source = data or config.data
    dataset = evaluation_data(config, data, task.info)
    if split not in dataset.splits:
        raise MedsightError(source, f"has no split {split!r} (it has {', '.join(dataset.splits)})")
    result = task.evaluate(run, model, dataset, split, run.eval_dir(split))
    training = add_training_record(run, run.eval_dir(split))  # how the weights were chosen, and any race
    return {**result, **training, "scored": record_scored(run.eval_dir(split), dataset, split)}


def set_nsd_tolerance(task: Any, tolerance: float | Sequence[float] | None, where: Any) -> None:
    """Override the plan's NSD tolerance for this evaluation (segmentation runs only)."""
    if tolerance is None:
        return
    if task.info.get("task") != "segmentation":
        raise MedsightError(where, f"is a {task.info.get('task')} run; --nsd-tolerance applies to segmentation")
    task.plan.setdefault("evaluation", {})["nsd_tolerance_mm"] = tolerance
