"""A task defined outside src/ (docs/examples/medsight_regression.py, copied to a temporary folder) trains,
evaluates and predicts through the public API and the command line, with nothing in medsight changed."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import medsight
from medsight import plugins
from medsight.io import formats
from medsight.models import registry as models_registry
from medsight.tasks import registry as tasks_registry

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "medsight_regression.py"
MODULE = "medsight_regression"


def brightness_data(root: Path, seed: int = 0) -> Path:
    """16x16 grey images whose target is their mean brightness in [0, 1]: a task a small network learns."""
    rng = np.random.default_rng(seed)
    root.mkdir()
    rows = []
    for i, split in enumerate(["train"] * 48 + ["val"] * 12 + ["test"] * 16):
        target = rng.uniform(0.1, 0.9)
        pixels = np.clip(target + rng.normal(0, 0.05, (16, 16)), 0, 1)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(root / f"case_{i:03d}.png")
        rows.append({"path": f"case_{i:03d}.png", "target": f"{pixels.mean():.6f}", "split": split})
    with open(root / "targets.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "target", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The example module on sys.path and named in MEDSIGHT_PLUGINS; registries restored afterwards."""
    folder = tmp_path / "plugins"
    folder.mkdir()
    shutil.copy(EXAMPLE, folder / f"{MODULE}.py")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv(plugins.ENV, MODULE)
    monkeypatch.setattr(tasks_registry, "_TASKS", dict(tasks_registry._TASKS))
    monkeypatch.setattr(formats, "_FORMATS", dict(formats._FORMATS))
    monkeypatch.setattr(models_registry, "_REGISTRY", dict(models_registry._REGISTRY))
    monkeypatch.setattr(plugins, "_imported", set())
    yield folder
    sys.modules.pop(MODULE, None)


def test_the_example_lives_outside_the_package():
    assert EXAMPLE.is_file() and Path(medsight.__file__).parent not in EXAMPLE.parents


def test_a_plugin_task_trains_evaluates_and_predicts_through_the_api(plugin, tmp_path):
    from medsight import api

    data = brightness_data(tmp_path / "bright")
    assert api.check(data)["task"] == "regression"
    api.train(data, tmp_path / "run", epochs=12, seed=0)
    result = api.evaluate(tmp_path / "run")
    with open(tmp_path / "run" / "eval" / "test" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    predicted = np.array([float(r["prediction"]) for r in rows])
    truth = np.array([float(r["target"]) for r in rows])
    assert len(rows) == 16 and result["metrics"]["mae"] == pytest.approx(np.abs(predicted - truth).mean(), rel=1e-5)
    assert result["metrics"]["mae"] < 0.5 * np.abs(truth - truth.mean()).mean()  # better than the mean target
    records = api.predict([tmp_path / "run"], [data / "case_070.png"], tmp_path / "pred")
    assert records[0]["prediction"] == pytest.approx(predicted[rows.index(next(r for r in rows if r["case"] == "case_070"))],
                                                     abs=1e-5)


def test_a_plugin_task_runs_from_the_command_line(plugin, tmp_path):
    data = brightness_data(tmp_path / "bright", seed=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin), str(Path(medsight.__file__).parents[1])]),
           plugins.ENV: MODULE}

    def medsight_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "medsight", *args], env=kwargs.get("env", env),
                              capture_output=True, text=True, timeout=600)  # a starved machine: ~6 CPU s to start

    run = tmp_path / "run"
    trained = medsight_cli("train", str(data), "--out", str(run), "--epochs", "3")
    assert trained.returncode == 0, trained.stderr
    evaluated = medsight_cli("evaluate", str(run))
    assert evaluated.returncode == 0, evaluated.stderr
    assert set(json.loads(evaluated.stdout)["metrics"]) == {"mae", "rmse", "r2"}
    predicted = medsight_cli("predict", str(run), str(data / "case_000.png"), "--out", str(tmp_path / "pred"))
    assert predicted.returncode == 0, predicted.stderr
    assert len(json.loads((tmp_path / "pred" / "predictions.json").read_text(encoding="utf-8"))) == 1
    listed = medsight_cli("models", "--task", "regression")
    assert listed.stdout.split()[:2] == ["tiny_regressor", "regression"]

    without = medsight_cli("check", str(data), env={k: v for k, v in env.items() if k != plugins.ENV})
    # without the plugin its targets.csv reads as a label table, whose measurements are no classes
    assert without.returncode == 2 and "classifier needs classes" in without.stderr
    assert len(without.stderr.strip().splitlines()) == 1
    missing = medsight_cli("check", str(data), env={**env, plugins.ENV: "no_such_plugin"})
    assert missing.returncode == 2 and "MEDSIGHT_PLUGINS names the module 'no_such_plugin'" in missing.stderr
