"""Lesions inside an organ: nested labels, region training, lesion-wise metrics, lesions outside the organ."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medsight.io.nested_labels import lesions_outside, nested_pair, region_plan
from medsight.metrics.lesions import case_lesions, diameter_mm, summarise
from medsight.synthetic.liver import make_liver
from medsight.tasks.segmentation.regions import RegionLoss, owned_labels, region_targets, regions_to_labels

LIVER = {0: "background", 1: "liver", 2: "cancer"}
REGIONS = [{"name": "liver", "labels": [1, 2]}, {"name": "cancer", "labels": [2]}]


def test_the_pair_and_regions_come_from_the_label_names():
    assert nested_pair(LIVER) == (1, 2)
    assert nested_pair({0: "background", 1: "kidney", 2: "tumor"}) == (1, 2)
    assert nested_pair({0: "background", 1: "anterior", 2: "posterior"}) is None
    assert region_plan(LIVER) == REGIONS and owned_labels(REGIONS) == [1, 2]


def test_regions_targets_and_back_to_labels():
    label = torch.tensor([[0, 1, 2, 1]]).view(1, 1, 1, 4)
    target = region_targets(label, REGIONS)
    assert target[0, :, 0].tolist() == [[0, 1, 1, 1], [0, 0, 1, 0]]
    probs = torch.tensor([[0.1, 0.9, 0.8, 0.7], [0.2, 0.3, 0.9, 0.6]]).view(2, 1, 4)
    assert regions_to_labels(probs, REGIONS)[0].tolist() == [0, 1, 2, 2]  # a lesion wins over the organ it is in


def test_region_loss_is_low_for_the_right_logits_and_high_for_the_wrong():
    label = torch.tensor([0, 1, 2, 1] * 4).view(1, 1, 4, 4)
    good = (region_targets(label, REGIONS) * 2 - 1) * 8
    loss = RegionLoss(REGIONS)
    assert float(loss(good, label)) < 0.01 < 1.0 < float(loss(-good, label))


def test_lesion_outside_the_organ_is_found():
    label = np.zeros((1, 8, 12), np.uint8)
    label[0, 1:6, 1:6] = 1
    label[0, 2:4, 2:4] = 2  # inside
    label[0, 5:7, 5:7] = 2  # at the organ's edge: touches it, so it is inside
    label[0, 1:3, 9:11] = 2  # away from the organ
    assert lesions_outside(label, 1, 2) == [4]


def test_lesion_metrics_by_hand():
    ref = np.zeros((1, 10, 20), bool)
    ref[0, 1:3, 1:3] = True  # 4 voxels, found with 2 of them
    ref[0, 5:9, 10:14] = True  # 16 voxels, missed
    pred = np.zeros_like(ref)
    pred[0, 1:3, 2:4] = True  # overlaps the first: Dice 2*2/(4+4) = 0.5
    pred[0, 7:9, 1:3] = True  # a false positive
    case = case_lesions(pred, ref, (1.0, 1.0, 1.0))
    assert [x["detected"] for x in case["lesions"]] == [True, False]
    assert [x["dice"] for x in case["lesions"]] == [0.5, 0.0]
    assert case["predicted"] == 2 and case["false_positives"] == 1
    out = summarise([case], bins=(2.0, 3.0))
    assert out["recall"] == 0.5 and out["precision"] == 0.5 and out["dice_per_lesion"] == 0.25
    assert diameter_mm(4, (1, 1, 1)) == pytest.approx((24 / np.pi) ** (1 / 3))  # 1.97 mm: the "<2 mm" bin
    assert out["by_size"]["<2 mm"]["detected"] == 1 and out["by_size"][">=3 mm"]["lesions"] == 1


def test_msd_liver_folder_check_plan_train_evaluate(tmp_path, monkeypatch, capsys):
    from medsight import api
    import medsight.data.volume_cache as volume_cache

    monkeypatch.setattr(volume_cache, "default_cache_root", lambda: tmp_path / "cache")
    data = make_liver(tmp_path / "Task03_Liver", seed=0, num_cases=6, shape=(8, 32, 32), spacing_xyz=(2.4, 2.4, 8.0),
                      outside=1)
    summary = api.check(data)
    assert summary["format"] == "nnunet" and summary["classes"] == ["background", "liver", "cancer"]
    assert len(summary["warnings"]) == 1 and summary["warnings"][0].startswith("case liver_0:")
    assert "warning: case liver_0" in capsys.readouterr().err
    run = tmp_path / "run"
    plan = api.plan(data, run)
    assert plan["regions"] == REGIONS
    plan.update(iterations_per_epoch=2, batch_size=2)
    plan["inference"]["tta"] = False
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, epochs=1)
    result = api.evaluate(run, split="val")
    lesions = result["lesions"]
    assert lesions["label"] == "cancer" and lesions["lesions"] == sum(len(c["lesions"]) for c in lesions["cases"])
    assert set(lesions["by_size"]) == {"<10 mm", "10-20 mm", ">=20 mm"}
    assert 0.0 <= lesions["recall"] <= 1.0
