"""`medsight crossval`: one plan for every fold, out-of-fold metrics over the folds' validation cases, the fold
ensemble on the test split, and a rerun that skips finished folds."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medsight import api
from medsight.evaluation.ensemble import evaluate_ensemble
from medsight.synthetic.segmentation import make_segmentation_dataset


def test_crossval_trains_folds_from_one_plan_and_scores_their_ensemble(tmp_path: Path, one_thread):
    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=2, num_cases=12, seed=0, size=32)
    for folder in ("imagesTs", "labelsTs"):
        shutil.rmtree(data / folder)  # no given test: medsight holds one back
    out = tmp_path / "cv"
    api.plan(data, out)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    plan.update({"iterations_per_epoch": 2, "batch_size": 2, "validation_cases": 1})
    plan["inference"]["mirror_axes"] = []
    (out / "plan.json").write_text(json.dumps(plan), encoding="utf-8")  # an edited plan is what every fold trains with

    summary = api.crossval(data, out, folds=2, epochs=1)
    for k in (0, 1):
        assert json.loads((out / f"fold_{k}" / "plan.json").read_text(encoding="utf-8")) == plan
    _, dataset = api.read_dataset(data)
    vals = [dataset.split_info["folds"][k]["val"] for k in (0, 1)]
    assert [f["val_cases"] for f in summary["per_fold"]] == [len(v) for v in vals]
    assert summary["out_of_fold"]["num_cases"] == len(vals[0]) + len(vals[1])
    assert 0 <= summary["out_of_fold"]["metrics"]["dice"]["value"] <= 1
    assert summary["test_ensemble"]["cases"] == len(dataset.splits["test"]) > 0
    ensemble = json.loads((out / "ensemble_test" / "metrics.json").read_text(encoding="utf-8"))
    assert len(ensemble["members"]) == 2 and ensemble["scored"]["cases"] == len(dataset.splits["test"])
    assert (out / "report.html").is_file() and json.loads((out / "crossval.json").read_text(encoding="utf-8"))["folds"] == 2

    weights = [(out / f"fold_{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)]
    again = api.crossval(data, out, folds=2, epochs=1)  # finished folds are skipped, not retrained
    assert [(out / f"fold_{k}" / "model.safetensors").stat().st_mtime_ns for k in (0, 1)] == weights
    assert again["per_fold"][0]["dice"] == summary["per_fold"][0]["dice"]


def coco_eval_stats(dataset, indices, results: list[dict]) -> np.ndarray:
    """pycocotools' COCOeval summary of results.json records against the data set's boxes on those cases."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from medsight.tasks.detection.evaluate import image_ids

    images, annotations, ids = [], [], image_ids(dataset)  # results.json names a COCO set's images by its own ids
    for index in indices:
        images.append({"id": ids[index], "width": 1, "height": 1})
        for box, label in zip(dataset.boxes[index], dataset.labels[index]):
            y0, x0, y1, x1 = (float(v) for v in box)
            annotations.append({"id": len(annotations) + 1, "image_id": ids[index], "iscrowd": 0,
                                "category_id": int(label) + 1, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                "area": (x1 - x0) * (y1 - y0)})
    truth = COCO()
    truth.dataset = {"images": images, "annotations": annotations,
                     "categories": [{"id": k + 1} for k in range(len(dataset.classes))]}
    with contextlib.redirect_stdout(io.StringIO()):
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


def test_detection_crossval_pools_out_of_fold_boxes_and_fuses_the_folds(tmp_path: Path, one_thread):
    from medsight.synthetic.detection import make_blobs_2d

    data = make_blobs_2d(tmp_path / "blobs", seed=0, num_images=16, size=48, radius=(5, 9), contrast=(0.5, 0.6),
                         classes=("disc",), per_image=(1, 2))
    coco = json.loads((data / "annotations.json").read_text(encoding="utf-8"))
    for image in coco["images"]:
        del image["split"]  # no given splits: medsight holds back a test split and makes the folds
    (data / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    out = tmp_path / "cv"
    api.plan(data, out)
    plan = json.loads((out / "plan.json").read_text(encoding="utf-8"))
    plan.update({"iterations_per_epoch": 2, "batch_size": 2})
    (out / "plan.json").write_text(json.dumps(plan), encoding="utf-8")

    summary = api.crossval(data, out, folds=2, epochs=1)
    _, dataset = api.read_dataset(data)
    position = {case: i for i, case in enumerate(dataset.case_ids)}
    vals = [[position[c] for c in dataset.split_info["folds"][k]["val"]] for k in (0, 1)]
    oof = summary["out_of_fold"]
    assert oof["num_cases"] == len(vals[0]) + len(vals[1]) and not set(vals[0]) & set(vals[1])
    # the pooled figures are COCOeval's on both folds' validation records together
    records = [r for k in (0, 1) for r in json.loads((out / f"fold_{k}" / "eval" / "val" / "predictions" /
                                                      "results.json").read_text(encoding="utf-8"))]
    stats = coco_eval_stats(dataset, vals[0] + vals[1], records)
    for name, column in (("map_50_95", 0), ("map_50", 1), ("map_75", 2), ("mar_100", 8)):
        assert oof["metrics"][name]["value"] == pytest.approx(max(stats[column], 0.0), abs=1e-6)
        low, high = oof["metrics"][name]["ci95"]
        assert low <= oof["metrics"][name]["value"] <= high

    test = dataset.splits["test"]
    assert summary["test_ensemble"]["cases"] == len(test) > 0
    ensemble = json.loads((out / "ensemble_test" / "metrics.json").read_text(encoding="utf-8"))
    assert len(ensemble["members"]) == 2 and "NMS" in ensemble["ensemble"]["combine"]
    # the union of both folds' boxes, merged by NMS: at most all the members' boxes, at least one where any has one
    fused = json.loads((out / "ensemble_test" / "predictions" / "results.json").read_text(encoding="utf-8"))
    member = [json.loads((out / f"fold_{k}" / "eval" / "test" / "predictions" / "results.json").read_text(encoding="utf-8"))
              for k in (0, 1)]
    from medsight.tasks.detection.evaluate import image_ids

    assert dataset.image_ids  # a COCO set: records carry its numeric image ids
    for case in (image_ids(dataset)[i] for i in test):
        count = [sum(r["image_id"] == case for r in records_k) for records_k in member]
        assert min(1, max(count)) <= sum(r["image_id"] == case for r in fused) <= sum(count)
    # a run fused with itself: every box meets its twin (IoU 1) and NMS keeps one, so nothing changes
    twice = evaluate_ensemble([out / "fold_0", out / "fold_0"], split="test", out=tmp_path / "twice")
    alone = ensemble["members"][0]["metrics"]
    for name in ("map_50_95", "map_50", "mar_100", "map50_voc_allpoint", "cpm"):
        assert twice["metrics"][name] == pytest.approx(alone[name], abs=1e-12)
