"""The task-agnostic paths with a tiny 3D segmentation run: served answer with a slice per picture, ONNX export."""

from __future__ import annotations

import numpy as np


def test_served_segmentation_has_a_picture_per_slice(segmentation_run):
    from fastapi.testclient import TestClient

    from medsight.io.images import read_image
    from medsight.serving.app import create_app

    run, data = segmentation_run
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    depth = read_image(volume).shape[0]
    with TestClient(create_app(run)) as client:
        assert client.get("/model").json()["task"] == "segmentation"
        response = client.post("/predict", files={"file": (volume.name, volume.read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["images"]["slices"]) == depth  # the page's slider: one overlay per slice
    assert body["images"]["overlay"][0].startswith("data:image/png;base64,")
    assert body["prediction"]["output"].endswith(".nii.gz") and "/" not in body["prediction"]["output"]
    assert "/tmp" not in response.text


def test_segmentation_network_exports_with_dynamic_spatial_axes(segmentation_run):
    import onnxruntime as ort

    from medsight.export.onnx import export_run

    run, _ = segmentation_run
    result = export_run(run)
    assert result["passed"] and result["max_abs_diff"] <= 1e-4 and result["fully_convolutional"]
    assert set(result["dynamic_axes"]["image"]) == {0, 2, 3, 4} and set(result["dynamic_axes"]["output"]) == {0, 2, 3, 4}
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    shape = result["checks"]["other_spatial_size"]["shape"]
    out = session.run(None, {"image": np.zeros(shape, np.float32)})[0]
    assert list(out.shape[2:]) == shape[2:]
