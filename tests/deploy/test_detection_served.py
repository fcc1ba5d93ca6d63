"""The task-agnostic paths with the detection task: predictor, server answer with boxes and overlay, export."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def detection_run(tmp_path_factory) -> tuple[Path, Path]:
    """A RetinaNet run on ten synthetic 48 px blob images, two iterations (seconds)."""
    from medsight import api
    from medsight.synthetic.detection import make_blobs_2d

    root = tmp_path_factory.mktemp("detection")
    data = make_blobs_2d(root / "blobs", seed=0, num_images=10, size=48)
    run = root / "run"
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = 2
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, model="retinanet", epochs=1, batch_size=2)
    return run, data


def test_server_answers_with_boxes_and_overlay(detection_run):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    run, data = detection_run
    image = sorted((data / "images").glob("*.png"))[0]
    with TestClient(create_app(run)) as client:
        model = client.get("/model").json()
        from .conftest import run_classes

        assert model["task"] == "detection" and model["classes"] == run_classes(run) and len(model["classes"]) == 2
        response = client.post("/predict", files={"file": (image.name, image.read_bytes(), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["task"] == "detection" and body["images"]["overlay"][0].startswith("data:image/png;base64,")
    results = body["prediction"]["results"]  # the task's results.json, inlined
    assert isinstance(results, list) and all(len(r["bbox"]) == 4 and 0 <= r["score"] <= 1 for r in results)
    assert "/tmp" not in response.text and "medsight-serve" not in response.text


def test_export_of_a_detection_run_passes(detection_run):
    """The detector's dense part is exported (its box decoding stays in Python): tests/deploy/test_detection_export.py."""
    from medsight.export.onnx import export_run

    run, _ = detection_run
    result = export_run(run)
    assert result["passed"] and result["max_abs_diff"] <= 1e-4 and result["checks"]["final_outputs"]["agree"]
