"""What every tracker does with a run folder: its settings as parameters, its log rows, its files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from medsight.training.callbacks import TrainingCallback
from medsight.tracking.record import epoch_figures, save_entries

PARAM_VALUE_CHARS = 500  # the most a tracking server is sure to keep per parameter value


def flatten(prefix: str, value: Any) -> dict[str, str]:
    """Nested JSON -> {'plan.input_size': '[28, 28]', ...}; lists stay whole, long values are cut."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, inner in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), inner))
        return out
    text = value if isinstance(value, str) else json.dumps(value)
    return {prefix: text[:PARAM_VALUE_CHARS]}


def run_parameters(run_path: Path) -> dict[str, str]:
    """config.json and plan.json of the run, flattened (config.*, plan.*)."""
    params: dict[str, str] = {}
    for name in ("config", "plan"):
        path = run_path / f"{name}.json"
        if path.is_file():
            params.update(flatten(name, json.loads(path.read_text(encoding="utf-8"))))
    return params


class Tracker(TrainingCallback):
    """A tracking target for one run folder; subclasses write the values somewhere."""

    def __init__(self, entry: dict[str, Any], run_path: Path):
        self.entry = dict(entry)
        self.run_path = Path(run_path)
        self.trackers: list["Tracker"] = [self]

    # what subclasses implement ------------------------------------------------
    def log_params(self, params: dict[str, str]) -> None:
        raise NotImplementedError

    def log_metrics(self, figures: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def log_files(self, paths: Iterable[Path], folder: str) -> None:
        raise NotImplementedError

    def close(self, status: str = "FINISHED") -> None:
        raise NotImplementedError

    # training -------------------------------------------------------------------
    def on_train_start(self, run: Any, config: Any, plan: dict[str, Any], progress: dict[str, Any]) -> None:
        if not self.entry.get("params_logged"):
            self.log_params(run_parameters(self.run_path))
            self.log_files([self.run_path / "config.json", self.run_path / "plan.json"], "")
            self.entry["params_logged"] = True
        # epochs a checkpoint holds but the tracker never saw (killed between the two) are sent now
        for row in progress.get("log", []):
            self.on_epoch_end(row, progress)

    def on_epoch_end(self, row: dict[str, Any], progress: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        if epoch <= int(self.entry.get("logged_epoch", 0)):
            return  # a --resume does not send an epoch twice
        self.log_metrics(epoch_figures(row), epoch)
        self.entry["logged_epoch"] = epoch
        save_entries(self.run_path, self.trackers)

    def on_train_end(self, summary: dict[str, Any]) -> None:
        figures = {f"best/{k}": float(v) for k, v in summary.items() if isinstance(v, (int, float))}
        self.log_metrics(figures, int(summary.get("epochs", 0)))
        self.log_files([self.run_path / "log.csv", self.run_path / "state.json", self.run_path / "dataset.json"], "")

    def log_evaluation(self, split: str, result: dict[str, Any], out_dir: Path) -> None:
        from medsight.tracking.record import evaluation_figures

        self.log_metrics(evaluation_figures(split, result), int(self.entry.get("logged_epoch", 0)))
        self.log_files([out_dir / "metrics.json", out_dir / "report.html"], f"eval/{split}")
