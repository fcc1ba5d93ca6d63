"""The HTTP API with FastAPI's test client: health, model, predictions, refusals, limits, path traversal."""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("httpx")


@pytest.fixture(scope="module")
def client(trained_run):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    with TestClient(create_app(trained_run, max_upload_mb=1)) as test_client:
        yield test_client


def png_bytes(folder: Path) -> bytes:
    return sorted(folder.glob("*.png"))[0].read_bytes()


def test_health_and_model(client, trained_run):
    assert client.get("/health").json() == {"status": "ok", "task": "classification", "engine": "torch"}
    from .conftest import run_classes

    model = client.get("/model").json()
    assert model["task"] == "classification" and model["classes"] == run_classes(trained_run)
    assert model["models"] == ["lenet5"]
    assert model["input"] == {"in_channels": 1, "input_size": [28, 28]}
    assert model["operating_point"]["rule"] == "balanced_accuracy"
    assert model["training"]["best_epoch"] == 1
    assert ".nii.gz" in model["uploads"]["accepts"] and model["uploads"]["max_upload_mb"] == 1


def test_predict_returns_result_and_pictures(client, test_pngs, trained_run):
    from .conftest import run_classes

    response = client.post("/predict", files={"file": ("case.png", png_bytes(test_pngs[0]), "image/png")},
                           data={"explain": "true"})
    assert response.status_code == 200
    body = response.json()
    assert body["file"] == "case.png" and body["task"] == "classification"
    prediction = body["prediction"]
    assert prediction["class"] in run_classes(trained_run) and sum(prediction["probabilities"].values()) == pytest.approx(1, abs=1e-5)
    assert set(body["images"]) == {"overlay", "gradcam", "gradcampp"}
    picture = body["images"]["gradcam"][0]
    assert picture.startswith("data:image/png;base64,")
    assert base64.b64decode(picture.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "/tmp" not in response.text and "file" not in prediction  # no server paths leak out
    quick = client.post("/predict", files={"file": ("case.png", png_bytes(test_pngs[0]))}, data={"explain": "false"})
    assert set(quick.json()["images"]) == {"overlay"}
    unasked = client.post("/predict", files={"file": ("case.png", png_bytes(test_pngs[0]))})
    assert set(unasked.json()["images"]) == {"overlay"}  # Grad-CAM only when the request asks for it


def test_bad_files_are_refused_with_a_reason_and_the_server_goes_on(client, test_pngs):
    broken = client.post("/predict", files={"file": ("scan.png", b"\x89PNG\r\n garbage", "image/png")})
    assert broken.status_code == 400 and broken.json()["detail"].startswith("scan.png: is not a readable PNG image")
    unknown = client.post("/predict", files={"file": ("notes.docx", b"PK\x03\x04 something")})
    assert unknown.status_code == 415 and "unsupported file type .docx" in unknown.json()["detail"]
    empty = client.post("/predict", files={"file": ("x.png", b"")})
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    assert client.post("/predict").status_code == 422  # no file field at all
    not_a_zip = client.post("/predict", files={"file": ("series.zip", b"definitely not a zip")})
    assert not_a_zip.status_code == 400 and "not a readable zip" in not_a_zip.json()["detail"]
    assert client.get("/health").status_code == 200
    assert client.post("/predict", files={"file": ("ok.png", png_bytes(test_pngs[0]))}).status_code == 200


def test_uploads_over_the_limit_get_413(client):
    declared = client.post("/predict", files={"file": ("big.png", b"\0" * (3 << 20))})
    assert declared.status_code == 413 and "limit of 1 MiB" in declared.json()["detail"]

    def chunks():  # no Content-Length: the body is counted as it arrives
        for _ in range(6):
            yield b"\0" * (512 << 10)

    streamed = client.post("/predict", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413
    assert client.get("/health").status_code == 200


def test_nothing_outside_the_page_is_served(client):
    for path in ("/static/../app.py", "/static/..%2F..%2Frun.py", "/static/%2e%2e/%2e%2e/etc/passwd",
                 "/static/index.html", "/static/model.safetensors", "/../../etc/passwd", "/etc/passwd"):
        response = client.get(path)
        assert response.status_code == 404, path
    assert client.get("/static/app.js").status_code == 200
    assert "<title>medsight</title>" in client.get("/").text
    assert client.get("/docs").status_code == 200 and "/predict" in client.get("/openapi.json").json()["paths"]


def test_upload_names_cannot_place_files(client, test_pngs, tmp_path):
    from medsight.serving.uploads import safe_name

    assert safe_name("../../etc/cron.d/evil.png") == "evil.png"
    assert safe_name("..\\..\\windows\\evil.png") == "evil.png"
    assert safe_name("...") == "upload"
    response = client.post("/predict", files={"file": ("../../../../evil.png", png_bytes(test_pngs[0]))})
    assert response.status_code == 200 and response.json()["file"] == "evil.png"
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("../../../../tmp/zip_slip_evil.png", png_bytes(test_pngs[0]))
    response = client.post("/predict", files={"file": ("case.zip", bundle.getvalue())})
    assert response.status_code == 200  # the member is unpacked flat inside the request's folder
    assert not Path("/tmp/zip_slip_evil.png").exists()


def test_zipped_dicom_series(volume_run, tmp_path):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    from .conftest import shared_dicom_series

    series = shared_dicom_series()
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        for path in sorted(series.iterdir()):
            archive.write(path, f"{series.name}/{path.name}")
    with TestClient(create_app(volume_run)) as client:
        response = client.post("/predict", files={"file": ("series.zip", bundle.getvalue(), "application/zip")},
                               data={"explain": "true"})
        assert response.status_code == 200, response.text
        assert len(response.json()["images"]["gradcam"]) in (1, 2)  # middle and most activated slices
        flat = client.post("/predict", files={"file": ("xray.dcm", Path(__import__("pydicom.data", fromlist=["x"])
                                                                        .get_testdata_file("CT_small.dcm")).read_bytes())})
        assert flat.status_code == 400 and "is 2D but this model takes 3D images" in flat.json()["detail"]


def test_headers_pointing_at_other_files_are_refused(client, tmp_path):
    secret = tmp_path / "secret.raw"
    secret.write_bytes(bytes(range(256)) * 4)  # enough bytes for a 28x28 picture
    header = f"ObjectType = Image\nNDims = 2\nDimSize = 28 28\nElementType = MET_UCHAR\nElementDataFile = {secret}\n"
    response = client.post("/predict", files={"file": ("scan.mhd", header.encode())})
    assert response.status_code == 415 and "data lies in another file" in response.json()["detail"]
    detached = b"NRRD0004\ntype: uint8\ndimension: 2\nsizes: 28 28\nencoding: raw\ndata file: " + str(secret).encode() + b"\n\n"
    response = client.post("/predict", files={"file": ("scan.nhdr", detached)})
    assert response.status_code == 415
    bundle = io.BytesIO()
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("scan.mha", header)
    assert client.post("/predict", files={"file": ("scan.zip", bundle.getvalue())}).status_code == 415


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif", ".nii.gz", ".nrrd", ".mha", ".dcm", ".bmp", ".zip"])
def test_garbage_in_any_format_is_a_400(client, suffix):
    import numpy as np

    rng = np.random.default_rng(len(suffix))
    for payload in (rng.bytes(300), b"\0" * 200, b"\0" * 128 + b"DICM" + rng.bytes(64)):
        response = client.post("/predict", files={"file": (f"bad{suffix}", payload)})
        assert response.status_code in (400, 415), (suffix, response.status_code, response.text[:200])
        assert response.json()["detail"].startswith(f"bad{suffix}")


def test_an_unexpected_failure_is_a_500_and_the_server_goes_on(trained_run, test_pngs, monkeypatch):
    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app

    app = create_app(trained_run)
    monkeypatch.setattr(app.state.predictor, "predict_files", lambda *a, **k: 1 / 0)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/predict", files={"file": ("ok.png", png_bytes(test_pngs[0]))})
        assert response.status_code == 500 and "ZeroDivisionError" in response.json()["detail"]
        assert client.get("/health").status_code == 200
