"""RUN/tracking.json: where a run is tracked; opening its trackers for training, evaluation and export."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from medsight.errors import MedsightError
from medsight.jsonio import load_json, save_json

TRACKING_FILE = "tracking.json"
KINDS = ("mlflow", "tensorboard")


@dataclass(frozen=True)
class TrackSpec:
    """One --track value: kind (mlflow or tensorboard) and target (a tracking URI or a log folder)."""

    kind: str
    target: str

    def to_dict(self) -> dict[str, str]:
        return {"kind": self.kind, "target": self.target}


def parse_track(value: str) -> TrackSpec:
    """'mlflow:file:///runs/mlruns', 'mlflow:http://host:5000' or 'tensorboard:DIR' -> a TrackSpec."""
    kind, sep, target = value.partition(":")
    if not sep or kind not in KINDS or not target:
        raise MedsightError(None, f"--track {value!r}: expected mlflow:URI or tensorboard:DIR")
    if kind == "tensorboard":
        target = str(Path(target).resolve())
    elif "://" not in target:  # a bare folder is a local file store
        target = Path(target).resolve().as_uri()
    return TrackSpec(kind, target)


def read_record(run_path: Path) -> dict[str, Any]:
    path = Path(run_path) / TRACKING_FILE
    if not path.is_file():
        return {}
    record = load_json(path)
    if not isinstance(record.get("trackers"), list):
        raise MedsightError(path, "has no 'trackers' list")
    return record


def write_record(run_path: Path, record: dict[str, Any]) -> None:
    save_json(Path(run_path) / TRACKING_FILE, record)


def _tracker(entry: dict[str, Any], run_path: Path):
    if entry.get("kind") == "mlflow":
        from medsight.tracking.mlflow_tracker import MlflowTracker

        return MlflowTracker(entry, run_path)
    if entry.get("kind") == "tensorboard":
        from medsight.tracking.tensorboard_tracker import TensorboardTracker

        return TensorboardTracker(entry, run_path)
    raise MedsightError(Path(run_path) / TRACKING_FILE, f"unknown tracker kind {entry.get('kind')!r}")


def open_trackers(run_path: str | Path, specs: Sequence[TrackSpec], resume: bool) -> list[Any]:
    """The trackers of a training run: those asked for now, and on --resume those in tracking.json.

    A spec already in tracking.json continues its tracking run (same MLflow run id, same TensorBoard folder).
    """
    run_path = Path(run_path)
    record = read_record(run_path) if resume else {}
    entries: list[dict[str, Any]] = list(record.get("trackers", []))
    known = {(e["kind"], e["target"]) for e in entries}
    entries += [spec.to_dict() for spec in specs if (spec.kind, spec.target) not in known]
    if not entries:
        return []
    trackers = _linked([_tracker(entry, run_path) for entry in entries])
    write_record(run_path, {"trackers": [t.entry for t in trackers]})
    return trackers


def save_entries(run_path: Path, trackers: Sequence[Any]) -> None:
    """Keep each tracker's entry (run id, last epoch logged) in tracking.json for --resume."""
    write_record(run_path, {"trackers": [t.entry for t in trackers]})


def _linked(trackers: list[Any]) -> list[Any]:
    """Each tracker knows the others, so that any of them can rewrite tracking.json whole."""
    for tracker in trackers:
        tracker.trackers = trackers
    return trackers


def _existing(run_path: str | Path) -> list[Any]:
    record = read_record(Path(run_path))
    return _linked([_tracker(entry, Path(run_path)) for entry in record.get("trackers", [])])


def after_evaluate(run_path: str | Path, split: str, result: dict[str, Any], out_dir: Path) -> None:
    """A tracked run's evaluation: figures with their 95% intervals, metrics.json and report.html."""
    for tracker in _existing(run_path):
        tracker.log_evaluation(split, result, Path(out_dir))
        tracker.close()


def after_export(run_path: str | Path, export_dir: Path) -> None:
    """A tracked run's export: export.json as an artifact."""
    for tracker in _existing(run_path):
        tracker.log_files([Path(export_dir) / "export.json"], "export")
        tracker.close()


def evaluation_figures(split: str, result: dict[str, Any]) -> dict[str, float]:
    """Flat {split/metric: value, split/metric_ci_low: ..., split/metric_ci_high: ...} of numbers only."""
    figures: dict[str, float] = {}
    for name, value in (result.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            figures[f"{split}/{name}"] = float(value)
    for name, interval in (result.get("ci95") or {}).items():
        if isinstance(interval, (list, tuple)) and len(interval) == 2 and None not in interval:
            figures[f"{split}/{name}_ci_low"] = float(interval[0])
            figures[f"{split}/{name}_ci_high"] = float(interval[1])
    return figures


def epoch_figures(row: dict[str, Any]) -> dict[str, float]:
    """The numbers of one log.csv row (the epoch itself is the step)."""
    return {k: float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
