"""plan -> train 2 epochs -> evaluate -> predict on tiny synthetic cases, through the public API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight import api
from medsight.errors import MedsightError
from medsight.synthetic.segmentation import make_segmentation_dataset


def shrink_plan(run: Path, **changes) -> None:
    """Make a unit-test-sized schedule (the planner's defaults suit real training)."""
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan.update({"iterations_per_epoch": 3, "batch_size": 2, "validation_cases": 2, **changes})
    plan["inference"]["mirror_axes"] = [0]  # one extra mirrored pass keeps the TTA path tested, cheaply
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


def test_train_evaluate_predict_3d(tmp_path: Path):
    import nibabel as nib

    torch.set_num_threads(1)
    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=3, num_cases=8, seed=0, size=16)
    run = tmp_path / "run"
    plan = api.plan(data, run)
    assert plan["patch_size"] == [16, 16, 16] and np.allclose(plan["target_spacing"], [1.2, 0.9, 0.9])
    shrink_plan(run)
    summary = api.train(data, run, epochs=2, model="dynunet_tiny")
    assert summary["epochs"] == 2 and (run / "model.safetensors").is_file()
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    assert "largest_component" in state["postprocessing"]
    info = json.loads((run / "dataset.json").read_text(encoding="utf-8"))
    assert info["fold"] == 0 and len(info["splits"]["train"]) + len(info["splits"]["val"]) == 6

    result = api.evaluate(run, split="test")
    assert result["num_cases"] == 2 and set(result["metrics"]) == {"dice", "iou", "hd95", "nsd", "lesion_f1"}
    assert 0.0 <= result["metrics"]["dice"] <= 1.0 and Path(result["report"]).is_file()
    saved = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert [r["case"] for r in saved["per_case"]] == ["shapes_006", "shapes_007"]
    names = list(saved["per_class"])
    assert saved["nsd_tolerance_mm"] == {n: 1.0 for n in names} and "1 mm" in saved["definitions"]["nsd"]
    # a tolerance per class, for this evaluation only (evaluate --nsd-tolerance 0.5,3)
    wide = api.evaluate(run, split="test", nsd_tolerance=[0.5, 3.0])
    assert wide["nsd_tolerance_mm"] == dict(zip(names, [0.5, 3.0]))
    assert wide["per_class"][names[1]]["nsd"] >= result["per_class"][names[1]]["nsd"]
    assert wide["per_class"][names[0]]["nsd"] <= result["per_class"][names[0]]["nsd"]
    with pytest.raises(MedsightError, match="3 NSD tolerances for 2 foreground classes"):
        api.evaluate(run, split="test", nsd_tolerance=[1.0, 2.0, 3.0])

    records = api.predict([run], [data / "imagesTs" / "shapes_006_0000.nii.gz"], tmp_path / "pred")
    mask_path = Path(records[0]["output"])
    assert mask_path.name == "shapes_006.nii.gz" and Path(records[0]["overlay"]).is_file()
    image, mask = nib.load(data / "imagesTs" / "shapes_006_0000.nii.gz"), nib.load(mask_path)
    np.testing.assert_allclose(mask.affine, image.affine, atol=1e-4)  # source geometry kept
    assert mask.shape == image.shape
    values = set(np.unique(np.asarray(mask.dataobj)).tolist())
    assert values <= {0, 1, 2}

    # an ensemble of the same run twice averages identical probabilities: the same mask
    twice = api.predict([run, run], [data / "imagesTs" / "shapes_006_0000.nii.gz"], tmp_path / "pred2")
    np.testing.assert_array_equal(np.asarray(nib.load(twice[0]["output"]).dataobj), np.asarray(mask.dataobj))


DICOM_SERIES = Path("/work/shared/data/hippocampus_dicom/Study1/13_HCropVolume")


@pytest.mark.skipif(not DICOM_SERIES.is_dir(), reason="shared DICOM data not present")
def test_predict_dicom_series_writes_nifti_in_its_geometry(tmp_path: Path):
    import SimpleITK as sitk

    torch.set_num_threads(1)
    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=3, num_cases=6, seed=0, size=16)
    run = tmp_path / "run"
    api.plan(data, run)
    shrink_plan(run, iterations_per_epoch=1)
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan["inference"]["tta"] = False
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, epochs=1, model="dynunet_tiny")
    record = api.predict([run], [DICOM_SERIES], tmp_path / "pred")[0]
    assert record["output"].endswith(".nii.gz")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(DICOM_SERIES)))
    series, mask = reader.Execute(), sitk.ReadImage(record["output"])
    assert mask.GetSize() == series.GetSize()
    np.testing.assert_allclose(mask.GetOrigin(), series.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(mask.GetSpacing(), series.GetSpacing(), atol=1e-4)


def test_train_and_predict_2d_png(tmp_path: Path):
    from PIL import Image

    torch.set_num_threads(1)
    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=2, num_cases=8, seed=1, size=32)
    run = tmp_path / "run"
    api.plan(data, run)
    shrink_plan(run)
    api.train(data, run, epochs=1, model="unet")
    records = api.predict([run], [data / "imagesTs"], tmp_path / "pred")
    assert len(records) == 2
    mask = Image.open(records[0]["output"])
    assert records[0]["output"].endswith(".png") and mask.size == (32, 32)
