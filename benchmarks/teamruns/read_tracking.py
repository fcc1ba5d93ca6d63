"""Read a tracked run back from its MLflow file store and TensorBoard event files, and check them against
the run folder (log.csv, eval/test/metrics.json).

    python benchmarks/teamruns/read_tracking.py /work/bench/teamruns/tracked
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path


def main(run: Path) -> int:
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    trackers = {t["kind"]: t for t in json.loads((run / "tracking.json").read_text(encoding="utf-8"))["trackers"]}
    with open(run / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))

    mlflow = trackers["mlflow"]
    client = MlflowClient(tracking_uri=mlflow["target"])
    tracked = client.get_run(mlflow["run_id"])
    print(f"MLflow {mlflow['target']} run {mlflow['run_id']} ({tracked.info.run_name}, {tracked.info.status})")
    print(f"  parameters: {len(tracked.data.params)}, e.g. config.model={tracked.data.params['config.model']}, "
          f"config.epochs={tracked.data.params['config.epochs']}, plan.input_size={tracked.data.params['plan.input_size']}")
    for name in ("train_loss", "val_loss", "auc"):
        history = [(m.step, round(m.value, 4)) for m in client.get_metric_history(mlflow["run_id"], name)]
        logged = [(int(r["epoch"]), round(float(r[name]), 4)) for r in rows]
        print(f"  {name} by epoch: {history}  (log.csv {logged}: {'same' if history == logged else 'DIFFERENT'})")
    for name in ("auc", "balanced_accuracy"):
        low, high = tracked.data.metrics[f"test/{name}_ci_low"], tracked.data.metrics[f"test/{name}_ci_high"]
        same = abs(tracked.data.metrics[f"test/{name}"] - metrics["metrics"][name]) < 1e-9
        print(f"  test/{name} {tracked.data.metrics[f'test/{name}']:.4f} [{low:.4f}, {high:.4f}]"
              f"  (metrics.json: {'same' if same else 'DIFFERENT'})")
    artifacts = sorted(a.path for folder in (None, "eval/test", "export") for a in client.list_artifacts(mlflow["run_id"], folder)
                       if not a.is_dir)
    print(f"  artifacts: {', '.join(artifacts)}")

    board = trackers["tensorboard"]
    events = EventAccumulator(board["log_dir"])
    events.Reload()
    tags = events.Tags()
    print(f"TensorBoard {board['log_dir']}: {len(tags['scalars'])} scalar tags, text {', '.join(sorted(tags['tensors']))}")
    for name in ("train_loss", "val_loss", "test/auc"):
        print(f"  {name}: {[(e.step, round(e.value, 4)) for e in events.Scalars(name)]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
