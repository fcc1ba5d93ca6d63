"""The task-agnostic paths with a tiny 3D segmentation run: the served answer carries the volume and its labels
as NIfTI for the page's viewer, for a volume file and for the files of a DICOM series; ONNX export."""

from __future__ import annotations

import numpy as np
import pytest


def nifti_of(data_url: str):
    """A NIfTI data URL of the answer, read back with nibabel (the viewer reads the same bytes)."""
    import base64
    import gzip
    import io

    import nibabel

    assert data_url.startswith("data:application/octet-stream;base64,")
    raw = gzip.decompress(base64.b64decode(data_url.split(",", 1)[1]))
    return nibabel.Nifti1Image.from_stream(io.BytesIO(raw))


def test_served_segmentation_sends_the_volume_and_labels_as_nifti(segmentation_run, tmp_path):
    import nibabel

    from fastapi.testclient import TestClient

    from medsight.serving.app import create_app
    from medsight.synthetic.dicom_series import series_of_volume

    run, data = segmentation_run
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    source = nibabel.load(volume)
    series = sorted(series_of_volume(volume, tmp_path / "series").iterdir())
    with TestClient(create_app(run)) as client:
        assert client.get("/model").json()["task"] == "segmentation"
        response = client.post("/predict", files={"file": (volume.name, volume.read_bytes())})
        as_series = client.post("/predict", files=[("file", (p.name, p.read_bytes())) for p in series])
    assert response.status_code == 200, response.text
    body = response.json()
    image, mask = nifti_of(body["volumes"]["image"]), nifti_of(body["volumes"]["mask"])
    np.testing.assert_array_equal(image.get_fdata(), source.get_fdata())  # whole-number values: sent as int16
    np.testing.assert_allclose(image.affine, source.affine, atol=1e-5)
    assert mask.shape == source.shape and mask.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(mask.dataobj))) <= {0, 1, 2}
    volumes = {name: float(np.count_nonzero(np.asarray(mask.dataobj) == value) * np.prod(source.header.get_zooms()))
               for value, name in ((1, "blob"), (2, "box"))}
    assert volumes == pytest.approx(body["prediction"]["volume_mm3"])  # the mask sent is the one measured
    assert body["images"]["overlay"][0].startswith("data:image/png;base64,")
    assert body["prediction"]["output"].endswith(".nii.gz") and "/" not in body["prediction"]["output"]
    assert "/tmp" not in response.text

    assert as_series.status_code == 200, as_series.text
    answer = as_series.json()
    assert answer["file"] == f"{len(series)} DICOM files"
    stored = np.stack([__import__("pydicom").dcmread(p).pixel_array for p in series]).astype(np.float32) - 1024
    viewed = nifti_of(answer["volumes"]["image"])
    np.testing.assert_array_equal(np.transpose(viewed.get_fdata(), (2, 1, 0)), stored)  # NIfTI is x-first
    assert viewed.header.get_zooms() == pytest.approx((0.9, 0.9, 1.2))
    assert nifti_of(answer["volumes"]["mask"]).shape == viewed.shape


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
