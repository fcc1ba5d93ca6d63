"""The command line on classification: help speed, plan, every --balance choice, refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from medsight.cli import main


def test_help_answers_fast_and_imports_no_torch():
    code = ("import sys, time; t = time.perf_counter(); from medsight.cli import build_parser; "
            "build_parser().format_help(); print(time.perf_counter() - t, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, encoding="utf-8", errors="replace", check=True).stdout.split()
    assert float(out[0]) < 1.0 and out[1] == "False"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "medsight", "--help"], capture_output=True, encoding="utf-8", errors="replace")
    assert result.returncode == 0 and "train" in result.stdout
    assert time.perf_counter() - started < 5.0  # interpreter start included


def test_models_lists_the_registry(capsys):
    assert main(["models", "--task", "classification"]) == 0
    out = capsys.readouterr().out
    for name in ("lenet5", "alexnet", "vgg16", "resnet18", "resnet50", "convnext_small_input"):
        assert name in out


def test_plan_is_computed_from_the_data(tiny_npz, tmp_path):
    assert main(["plan", str(tiny_npz), "--out", str(tmp_path / "run")]) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text(encoding="utf-8"))
    data = np.load(tiny_npz)
    # fingerprinted on every training case of every fold (train + val), so all folds share the plan
    labels = np.concatenate([data["train_labels"].ravel(), data["val_labels"].ravel()])
    images = np.concatenate([data["train_images"], data["val_images"]])
    assert plan["in_channels"] == 1 and plan["input_size"] == [28, 28] and plan["spatial_dims"] == 2
    assert plan["class_counts"] == np.bincount(labels).tolist()
    weights = np.asarray(plan["class_weights"])
    assert weights[np.argmin(plan["class_counts"])] > weights[np.argmax(plan["class_counts"])]
    low, high = plan["normalization"]["clip"]
    clipped = np.clip(images.astype(np.float32), low, high)
    assert abs(plan["normalization"]["mean"][0] - clipped.mean()) < 0.05 * clipped.std()
    assert plan["batch_size"] >= 4 and plan["epochs"] >= 10


@pytest.mark.parametrize("balance", ["none", "weights", "sampler", "focal", "smote"])
def test_every_balance_choice_trains_and_chooses_an_operating_point(tiny_npz, tmp_path, balance):
    run = tmp_path / balance
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5",
                 "--balance", balance]) == 0
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    assert config["balance"] == balance and config["model"] == "lenet5"
    assert state["operating_point"]["rule"] == "balanced_accuracy" and "threshold" in state["operating_point"]
    log = (run / "log.csv").read_text(encoding="utf-8").splitlines()
    assert log[0].startswith("epoch,seconds,train_loss,val_loss") and len(log) == 2


def test_training_into_a_trained_run_is_refused(tiny_npz, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5"]) == 0
    before = (run / "model.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "already holds a trained run" in err and "\n" not in err
    assert (run / "model.safetensors").read_bytes() == before


def test_unknown_model_and_missing_data_exit_2(tiny_npz, tmp_path, capsys):
    assert main(["train", str(tiny_npz), "--out", str(tmp_path / "a"), "--model", "nonet"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "nothing-here")]) == 2
    assert "nothing-here" in capsys.readouterr().err


def test_evaluate_and_predict_from_the_command_line(tiny_npz, tmp_path, capsys):
    from PIL import Image

    run = tmp_path / "run"
    assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "2", "--model", "lenet5"]) == 0
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_cases"] == 40 and 0.0 <= metrics["metrics"]["auc"] <= 1.0
    assert (run / "eval" / "test" / "report.html").stat().st_size > 10_000
    image = np.load(tiny_npz)["test_images"][0]
    Image.fromarray(image).save(tmp_path / "case.png")
    assert main(["predict", str(run), str(tmp_path / "case.png"), "--out", str(tmp_path / "pred")]) == 0
    csv_text = (tmp_path / "pred" / "predictions.csv").read_text(encoding="utf-8")
    assert "case.png" in csv_text


@pytest.mark.parametrize("side, expected", [(1100, 256), (300, 128)])
def test_plan_input_size_keeps_detail_of_large_photographs(tmp_path, side, expected):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("none", "lesion"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(5):
            picture = rng.integers(0, 255, (side, side + 40, 3), dtype=np.uint8)
            Image.fromarray(picture).save(tmp_path / "data" / name / f"{k}.jpg")
    assert main(["plan", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 0
    plan = json.loads((tmp_path / "run" / "plan.json").read_text(encoding="utf-8"))
    # photographs of 1,024 px or more keep 256 px; smaller images the 128 px default ceiling
    assert plan["input_size"] == [expected, expected]
