"""MLflow: parameters, per-epoch metrics and artifacts in a local file store or on a self-hosted server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

from medsight.errors import MedsightError
from medsight.tracking.base import Tracker

EXPERIMENT = "medsight"
BATCH = 100  # MLflow's limit of parameters per log_batch call


def _client(uri: str):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MedsightError(None, "--track mlflow needs MLflow: pip install 'medsight[tracking]'") from None
    if uri.startswith("file:"):
        # MLflow 3 keeps the file store behind this switch; it is the only store that needs no database or server
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    return MlflowClient(tracking_uri=uri)


class MlflowTracker(Tracker):
    """One MLflow run per run folder, created on first use; its id is kept in tracking.json."""

    def __init__(self, entry: dict[str, Any], run_path: Path):
        super().__init__(entry, run_path)
        from mlflow.entities import Metric, Param, RunStatus

        self._metric, self._param, self._status = Metric, Param, RunStatus
        self.client = _client(entry["target"])
        try:
            if not entry.get("run_id"):
                experiment = self.client.get_experiment_by_name(EXPERIMENT)
                experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(EXPERIMENT)
                created = self.client.create_run(experiment_id, run_name=Path(run_path).resolve().name,
                                                 tags={"medsight.run_folder": str(Path(run_path).resolve())})
                self.entry.update(run_id=created.info.run_id, experiment_id=experiment_id)
            else:
                self.client.update_run(self.entry["run_id"], status="RUNNING")
        except Exception as exc:  # a server that does not answer, a store that cannot be written
            raise MedsightError(entry["target"], f"MLflow tracking failed ({type(exc).__name__}: {exc})") from None

    @property
    def run_id(self) -> str:
        return self.entry["run_id"]

    def log_params(self, params: dict[str, str]) -> None:
        items = [self._param(k, v) for k, v in params.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[start:start + BATCH])

    def log_metrics(self, figures: dict[str, float], step: int) -> None:
        import time

        now = int(time.time() * 1000)
        items = [self._metric(k, v, now, step) for k, v in figures.items()]
        for start in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, metrics=items[start:start + BATCH])

    def log_files(self, paths: Iterable[Path], folder: str) -> None:
        for path in paths:
            if Path(path).is_file():
                self.client.log_artifact(self.run_id, str(path), folder or None)

    def close(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status)
