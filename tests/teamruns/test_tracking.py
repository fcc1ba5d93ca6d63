"""--track: an MLflow file store and TensorBoard event files, read back; --resume continues the same run."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


def _event_scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_tracked_run_reads_back_and_resumes(team_data, tmp_path, one_thread, monkeypatch):
    from mlflow.tracking import MlflowClient

    from medsight import api
    from medsight.jsonio import load_json
    from medsight.tracking.base import Tracker

    store, boards, out = tmp_path / "mlruns", tmp_path / "tb", tmp_path / "run"
    track = [f"mlflow:{store.as_uri()}", f"tensorboard:{boards}"]
    logged = Tracker.on_epoch_end

    def killed_before_tracking_epoch_2(self, row, progress):
        if row["epoch"] == 2:  # epoch 2's checkpoint and log row are written, the trackers never hear of it
            raise KeyboardInterrupt
        logged(self, row, progress)

    monkeypatch.setattr(Tracker, "on_epoch_end", killed_before_tracking_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        api.train(team_data, out, model="lenet5", epochs=3, seed=0, track=track)
    monkeypatch.setattr(Tracker, "on_epoch_end", logged)
    record = load_json(out / "tracking.json")
    run_id = next(e["run_id"] for e in record["trackers"] if e["kind"] == "mlflow")
    assert MlflowClient(tracking_uri=store.as_uri()).get_run(run_id).info.status == "KILLED"
    assert [m.step for m in MlflowClient(tracking_uri=store.as_uri()).get_metric_history(run_id, "train_loss")] == [1]

    api.train(None, out, resume=True)  # continues the same tracking runs without --track
    api.evaluate(out, split="test")
    assert next(e["run_id"] for e in load_json(out / "tracking.json")["trackers"] if e["kind"] == "mlflow") == run_id

    client = MlflowClient(tracking_uri=store.as_uri())
    runs = client.search_runs([client.get_experiment_by_name("medsight").experiment_id])
    assert [r.info.run_id for r in runs] == [run_id] and runs[0].info.status == "FINISHED"
    with open(out / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    history = client.get_metric_history(run_id, "train_loss")
    assert [m.step for m in history] == [1, 2, 3]  # each epoch once: 2 sent on resume from the checkpoint, then 3
    assert [m.value for m in history] == pytest.approx([float(r["train_loss"]) for r in rows], rel=1e-5)
    tracked = client.get_run(run_id).data
    assert tracked.params["config.model"] == "lenet5" and tracked.params["config.epochs"] == "3"
    assert "plan.input_size" in tracked.params
    metrics = load_json(out / "eval" / "test" / "metrics.json")
    assert tracked.metrics["test/auc"] == pytest.approx(metrics["metrics"]["auc"])
    assert tracked.metrics["test/auc_ci_low"] == pytest.approx(metrics["ci95"]["auc"][0])
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {a.path for a in client.list_artifacts(run_id, "eval/test")}
    assert {"config.json", "plan.json", "log.csv", "eval/test/report.html", "eval/test/metrics.json"} <= artifacts

    scalars = _event_scalars(next(e["log_dir"] for e in load_json(out / "tracking.json")["trackers"]
                                  if e["kind"] == "tensorboard"))
    assert [step for step, _ in scalars["train_loss"]] == [1, 2, 3]
    assert [v for _, v in scalars["val_loss"]] == pytest.approx([float(r["val_loss"]) for r in rows], rel=1e-5)
    assert scalars["test/auc"][0][1] == pytest.approx(metrics["metrics"]["auc"])


def test_bad_track_value_is_one_line(tmp_path, capsys):
    from medsight.cli import main

    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--track", "wandb:x"]) == 2
    assert "expected mlflow:URI or tensorboard:DIR" in capsys.readouterr().err
