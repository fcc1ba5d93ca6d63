"""The detection task end to end on synthetic data (train -> evaluate -> predict) and its sliding windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from medsight import api
from medsight.synthetic.detection import make_blobs_2d
from medsight.tasks.detection.infer import detect_prepared
from medsight.tasks.detection.evaluate import coco_box, world_box


class BrightBox(nn.Module):
    """A stand-in detector: the bounding box of the voxels above 0.5 in each window (score 0.9, class 0)."""

    def forward(self, x):
        out = []
        for image in x:
            found = torch.nonzero(image[0] > 0.5)
            if len(found) == 0:
                out.append({"boxes": torch.zeros(0, 2 * (x.dim() - 2)), "scores": torch.zeros(0), "labels": torch.zeros(0, dtype=torch.long)})
                continue
            box = torch.cat([found.min(0).values, found.max(0).values + 1]).float()[None]
            out.append({"boxes": box, "scores": torch.tensor([0.9]), "labels": torch.tensor([0])})
        return out


def test_sliding_windows_merge_a_box_cut_by_window_edges():
    image = torch.zeros(1, 40, 40, 40)
    image[0, 14:22, 18:26, 5:9] = 1.0  # straddles the edges of 24^3 windows that start at 0 and 16
    plan = {"spatial_dims": 3, "patch_size": [24, 24, 24], "size_divisor": 8, "window_overlap": 0.34}
    found = detect_prepared([BrightBox()], image, plan, torch.device("cpu"))
    np.testing.assert_allclose(found["boxes"], [[14, 18, 5, 22, 26, 9]])


def test_coco_and_world_boxes():
    assert coco_box(np.array([1.0, 2.0, 5.0, 9.0])) == [2.0, 1.0, 7.0, 4.0]

    class Geometry:
        spacing, origin, direction = (2.0, 1.0, 1.0), (10.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)

    world = world_box(np.array([0.0, 0.0, 0.0, 1.0, 1.0, 2.0]), Geometry())
    assert world["min"] == [9.0, -0.5, -0.5] and world["max"] == [13.0, 0.5, 0.5]


@pytest.mark.parametrize("model", ["retinanet", "faster_rcnn"])
def test_train_evaluate_predict_2d(tmp_path, model):
    data = make_blobs_2d(tmp_path / "blobs", seed=0, num_images=10, size=48)
    run = tmp_path / "run"
    plan = api.plan(data, run)
    plan["iterations_per_epoch"] = 2  # the plan is a file a user may edit; here it keeps the test short
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    summary = api.train(data, run, model=model, epochs=2, batch_size=2)
    assert summary["epochs"] == 2 and (run / "model.safetensors").is_file()
    result = api.evaluate(run, split="test")
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    for key in ("map_50", "map_50_95", "map_75", "mar_100", "map50_voc_allpoint", "froc", "cpm", "froc_iou", "cpm_iou"):
        assert key in metrics["metrics"] and key in metrics["definitions"]
    assert "101 recall points" in metrics["definitions"]["map_50_95"] and "Definitions" in Path(result["report"]).read_text(encoding="utf-8")
    assert set(metrics["per_class"]) == {"disc", "ring"}
    assert (run / "eval" / "test" / "report.html").is_file() and result["report"].endswith("report.html")
    rows = api.predict([run], [data / "images" / "blob_000.png"], tmp_path / "pred")
    assert len(rows) == 1
    records = json.loads((tmp_path / "pred" / "results.json").read_text(encoding="utf-8"))
    assert all(len(r["bbox"]) == 4 and 0 <= r["score"] <= 1 for r in records)
    assert (tmp_path / "pred" / "overlays" / "blob_000.png").is_file()
