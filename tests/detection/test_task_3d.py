"""The 3D path end to end: nnDetection raw spheres -> plan -> 1 epoch -> evaluate (FROC/CPM) -> predict a NIfTI."""

from __future__ import annotations

import json

from medsight import api
from medsight.synthetic.detection import make_spheres_3d


def test_train_evaluate_predict_3d(tmp_path):
    data = make_spheres_3d(tmp_path / "nodules", seed=0, num_cases=8, size=24, radius=(2.0, 4.0), per_case=(1, 2))
    run = tmp_path / "run"
    plan = api.plan(data, run)
    assert plan["spatial_dims"] == 3 and len(plan["anchor_shapes"][0]) == 3
    plan["iterations_per_epoch"] = 2
    plan["patch_size"] = [16, 16, 16]  # smaller than the volumes, so prediction runs sliding windows
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, epochs=1, batch_size=1)
    result = api.evaluate(run, split="test")
    assert 0.0 <= result["metrics"]["cpm"] <= 1.0 and set(result["metrics"]["froc"]) == {"0.125", "0.25", "0.5", "1", "2", "4", "8"}
    assert set(result["metrics"]["froc_iou"]) == set(result["metrics"]["froc"]) and "cpm_iou" in result["metrics"]
    assert "world millimetres" in result["definitions"]["froc"] and "per scan" in result["definitions"]["froc"]
    volume = sorted((data / "imagesTs").glob("*.nii.gz"))[0]
    api.predict([run], [volume], tmp_path / "pred")
    records = json.loads((tmp_path / "pred" / "results.json").read_text(encoding="utf-8"))
    for record in records:
        assert len(record["bbox"]) == 6 and len(record["bbox_world"]["center"]) == 3


def test_predicting_a_2d_image_with_a_3d_run_is_one_line(tmp_path):
    import numpy as np
    import pytest
    from PIL import Image

    from medsight.errors import MedsightError
    from medsight.tasks.detection.task import DetectionTask
    from medsight.tasks.detection.predict import predict_detection

    picture = tmp_path / "slice.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(picture)
    task = DetectionTask({"spatial_dims": 3}, {"classes": ["nodule"]})
    with pytest.raises(MedsightError, match="is a 2D image but this run's model detects in 3D"):
        predict_detection(task, None, [], [picture], tmp_path / "out")
