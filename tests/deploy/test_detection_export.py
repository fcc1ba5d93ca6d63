"""Detection on ONNX: the dense part exported and checked, its outputs decoded by the same postprocess."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def train_tiny(root: Path, model: str, data: Path, spatial_dims: int = 2) -> Path:
    """A run trained for two short epochs (seconds), then exported to ONNX."""
    from medsight import api
    from medsight.export.onnx import export_run

    run = root / f"run_{model}_{spatial_dims}d"
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = 4 if spatial_dims == 2 else 2
    if spatial_dims == 3:
        plan["patch_size"] = [16, 16, 16]  # smaller than the volumes: prediction runs sliding windows
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, model=model, epochs=2, batch_size=2)
    export_run(run)
    return run


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    from medsight.synthetic.detection import make_blobs_2d

    return make_blobs_2d(tmp_path_factory.mktemp("det-export") / "blobs", seed=0, num_images=10, size=48)


@pytest.fixture(scope="module", params=["retinanet", "faster_rcnn"])
def exported(request, blobs, tmp_path_factory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("det-runs"), request.param, blobs)


@pytest.fixture(scope="module")
def test_images(blobs, tmp_path_factory) -> list[Path]:
    """Two test images, and a third cut to 30 px: its network window (32 px) is not the exported shape."""
    from PIL import Image

    images = sorted((blobs / "images").glob("*.png"))[:2]
    small = tmp_path_factory.mktemp("det-small") / "small.png"
    Image.fromarray(np.asarray(Image.open(images[0]))[:30, :30]).save(small)
    return [*images, small]


def test_export_json_records_head_diff_and_box_agreement(exported):
    recorded = json.loads((exported / "export" / "export.json").read_text(encoding="utf-8"))
    assert (exported / "export" / "model.onnx").is_file() and recorded["passed"] is True
    assert recorded["max_abs_diff"] <= 1e-4 and recorded["check_inputs"].startswith("2 cases of the val split of ")
    boxes = recorded["checks"]["final_outputs"]
    assert boxes["agree"] is True and boxes["cases_agreeing"] == boxes["cases"] == 2
    assert boxes["boxes_torch"] == boxes["boxes_onnx"] > 0 and boxes["max_box_diff"] <= 1e-3
    assert recorded["fully_convolutional"] is True
    if recorded["output_names"] == ["boxes", "scores", "labels"]:  # Faster R-CNN 2D: the whole detector, one image a call
        assert exported.name.startswith("run_faster_rcnn") and recorded["dynamic_axes"]["image"] == {"2": "dim0", "3": "dim1"}
        assert recorded["checks"]["other_spatial_size"]["agree"] and boxes["postprocess"] == "in the ONNX graph"
        return
    # the heads are fully convolutional: batch and spatial axes are dynamic, each output with its own names
    assert recorded["dynamic_axes"]["image"] == {"0": "batch", "2": "dim0", "3": "dim1"}
    assert recorded["dynamic_axes"]["output1"] == {"0": "batch", "2": "output1_dim0", "3": "output1_dim1"}
    assert recorded["checks"]["other_spatial_size"]["max_abs_diff"] <= 1e-4


def test_onnx_and_torch_predict_the_same_boxes(exported, test_images, tmp_path):
    from medsight.cli import main
    from medsight.inference.predictor import Predictor
    from medsight.tasks.detection.infer import detect_image
    from medsight.io.images import read_image

    assert main(["predict", str(exported), *map(str, test_images), "--out", str(tmp_path / "torch")]) == 0
    assert main(["predict", str(exported), *map(str, test_images), "--out", str(tmp_path / "onnx"), "--engine", "onnx"]) == 0
    by_torch = json.loads((tmp_path / "torch" / "results.json").read_text(encoding="utf-8"))
    by_onnx = json.loads((tmp_path / "onnx" / "results.json").read_text(encoding="utf-8"))
    assert len(by_torch) == len(by_onnx) > 0
    for a, b in zip(by_torch, by_onnx):  # written rounded to 0.01 px and 1e-5
        assert (a["file"], a["category"]) == (b["file"], b["category"])
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=0.011)
        assert b["score"] == pytest.approx(a["score"], abs=2e-5)
    engines = {name: Predictor([exported], engine=name) for name in ("torch", "onnx")}
    for path in test_images:
        raw = np.asarray(read_image(path).array, dtype=np.float32)
        found = {name: detect_image(p.models, raw, p.task.plan, p.task.device) for name, p in engines.items()}
        assert len(found["torch"]["boxes"]) == len(found["onnx"]["boxes"])
        np.testing.assert_allclose(found["onnx"]["boxes"], found["torch"]["boxes"], atol=1e-3)
        np.testing.assert_allclose(found["onnx"]["scores"], found["torch"]["scores"], atol=1e-5)
        np.testing.assert_array_equal(found["onnx"]["labels"], found["torch"]["labels"])


def test_both_engines_decode_with_the_detectors_own_postprocess(exported, monkeypatch):
    """RetinaNet's ONNX outputs are decoded by its PyTorch postprocess; the 2D Faster R-CNN graph decodes itself."""
    from medsight.inference.predictor import Predictor
    from medsight.tasks.detection.infer import run_network

    for engine in ("torch", "onnx"):
        predictor = Predictor([exported], engine=engine)
        detector_type = type(predictor.models[0] if engine == "torch" else predictor.models[0].torch_module)
        calls = []
        original = detector_type.postprocess
        monkeypatch.setattr(detector_type, "postprocess", lambda self, *a: calls.append(engine) or original(self, *a))
        run_network(predictor.models[0], torch.zeros(1, 1, 64, 64))
        whole = engine == "onnx" and predictor.models[0].gives_detections
        assert calls == ([] if whole else [engine])
        if engine == "onnx":
            assert whole == exported.name.startswith("run_faster_rcnn")
        monkeypatch.undo()


def test_served_onnx_boxes_match_torch(exported, test_images):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    answers = {}
    for engine in ("torch", "onnx"):
        with TestClient(create_app(exported, engine=engine)) as client:
            response = client.post("/predict", files={"file": ("a.png", test_images[0].read_bytes(), "image/png")})
        assert response.status_code == 200, response.text
        answers[engine] = response.json()["prediction"]["results"]
    assert len(answers["torch"]) == len(answers["onnx"]) > 0
    for a, b in zip(answers["torch"], answers["onnx"]):
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=0.011)
        assert a["category"] == b["category"] and b["score"] == pytest.approx(a["score"], abs=2e-5)


def test_3d_retinanet_exports_and_agrees(tmp_path):
    from medsight.synthetic.detection import make_spheres_3d

    data = make_spheres_3d(tmp_path / "nodules", seed=0, num_cases=8, size=24, radius=(2.0, 4.0), per_case=(1, 2))
    run = train_tiny(tmp_path, "retinanet", data, spatial_dims=3)
    recorded = json.loads((run / "export" / "export.json").read_text(encoding="utf-8"))
    assert recorded["passed"] and recorded["max_abs_diff"] <= 1e-4 and recorded["checks"]["final_outputs"]["agree"]
    assert recorded["dynamic_axes"]["image"] == {"0": "batch", "2": "dim0", "3": "dim1", "4": "dim2"}
