"""ONNX export: checked against PyTorch on real validation cases, recorded in export.json, usable as an engine."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

from medsight.errors import MedsightError


def test_export_json_records_the_check_on_real_cases(exported_run):
    run, result = exported_run
    recorded = json.loads((run / "export" / "export.json").read_text(encoding="utf-8"))
    assert recorded["max_abs_diff"] == pytest.approx(result["max_abs_diff"])
    assert recorded["passed"] is True and recorded["max_abs_diff"] <= 1e-4 and recorded["tolerance"] == 1e-4
    assert recorded["opset"] == 17
    assert recorded["check_inputs"].startswith("16 cases of the val split of ")
    assert recorded["checks"]["batch"]["cases"] == 16 and recorded["checks"]["batch"]["argmax_agreement"] == 1.0
    assert recorded["dynamic_axes"]["image"] == {"0": "batch"} and recorded["fully_convolutional"] is False
    assert (run / "export" / "model.onnx").is_file()
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    steps = {step["name"]: step for step in recorded["preprocessing"]}
    assert steps["resize"]["input_size"] == plan["input_size"] == [28, 28]
    assert steps["normalize"]["normalization"] == plan["normalization"]
    assert recorded["network_input"] == {"channels": 1, "size": [28, 28], "fed": "whole"}


def test_onnx_engine_gives_the_same_predictions(exported_run, test_pngs, tmp_path):
    from medsight import api

    run, _ = exported_run
    folder, _ = test_pngs
    torch_records = api.predict([run], [folder], tmp_path / "torch")
    onnx_records = api.predict([run], [folder], tmp_path / "onnx", engine="onnx", explain=True)
    assert [r["class"] for r in onnx_records] == [r["class"] for r in torch_records]
    for a, b in zip(torch_records, onnx_records):
        for name in a["probabilities"]:
            assert b["probabilities"][name] == pytest.approx(a["probabilities"][name], abs=1e-5)
        assert np.load(b["arrays"]["gradcam"]).shape == (28, 28)  # Grad-CAM through the PyTorch twin


def test_onnx_engine_batches_of_any_size(exported_run):
    from medsight.api import load_run
    from medsight.inference.engines import OnnxEngine

    run, _ = exported_run
    _, _, model = load_run(run)
    engine = OnnxEngine(run / "export" / "model.onnx")
    assert engine.eval() is engine and engine.to("cpu") is engine
    for batch in (1, 3, 40):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            np.testing.assert_allclose(engine(x).numpy(), model(x).numpy(), atol=1e-5)


def test_missing_data_falls_back_to_synthetic_inputs_and_says_so(trained_run, tmp_path):
    from medsight.export.onnx import export_run

    moved = tmp_path / "moved_run"
    shutil.copytree(trained_run, moved, ignore=shutil.ignore_patterns("export"))
    info = json.loads((moved / "dataset.json").read_text(encoding="utf-8"))
    info["source"] = str(tmp_path / "gone.npz")
    (moved / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    result = export_run(moved)
    assert result["check_inputs"].startswith("synthetic: 4 standard-normal inputs of shape [1, 28, 28]")
    assert "is not there" in result["check_inputs"] and result["passed"]


def test_onnx_engine_without_export_says_what_to_do(trained_run, tmp_path):
    from medsight.inference.predictor import Predictor

    bare = tmp_path / "bare"
    shutil.copytree(trained_run, bare, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(MedsightError, match="medsight export"):
        Predictor([bare], engine="onnx")


def test_fully_convolutional_networks_get_dynamic_spatial_axes():
    from medsight.export.onnx import spatial_follows_input

    dense = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.LazyLinear(2))
    conv = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1))
    x = torch.zeros(1, 1, 16, 16)
    dense(x)
    assert spatial_follows_input(conv, x) is True
    assert spatial_follows_input(dense, x) is False


def test_cli_export(trained_run, tmp_path, capsys):
    from medsight.cli import main

    copy = tmp_path / "cli_run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("export"))
    assert main(["export", str(copy), "--format", "onnx"]) == 0
    assert "exported:" in capsys.readouterr().out and (copy / "export" / "export.json").is_file()


def test_fully_convolutional_export_accepts_other_sizes(tmp_path, monkeypatch):
    import onnxruntime as ort

    import medsight.export.onnx
    from medsight.export.onnx import export_run
    from medsight.run import RunFolder

    class FakeTask:
        name = "segmentation"
        plan = {"in_channels": 1, "patch_size": [16, 16]}
        preprocessing_plan = plan

    run = RunFolder(tmp_path / "seg_run")
    run.path.mkdir()
    (run.path / "dataset.json").write_text(json.dumps({"task": "segmentation"}), encoding="utf-8")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 1)).eval()
    monkeypatch.setattr(medsight.export.onnx, "load_run", lambda path, device="cpu": (run, FakeTask(), net))
    result = export_run(run.path)
    assert result["fully_convolutional"] and result["dynamic_axes"]["image"] == {0: "batch", 2: "dim0", 3: "dim1"}
    assert result["checks"]["other_spatial_size"]["shape"] == [2, 1, 32, 32]
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(3, 1, 24, 40)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(session.run(None, {"image": x})[0], net(torch.from_numpy(x)).numpy(), atol=1e-5)
