"""`medsight crossval`: one plan for every fold, out-of-fold metrics over the folds' validation cases, the fold
ensemble on the test split, and a rerun that skips finished folds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from medsight import api
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
