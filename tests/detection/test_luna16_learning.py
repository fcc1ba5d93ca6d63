"""LUNA16 in world mm: a hand-made scan whose answer is known (reading and submission), and a short learning run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medsight.io.luna16 import read_luna16


def test_a_hand_made_nodule_reads_into_its_voxels_and_comes_back_in_the_submission(tmp_path):
    """x, y, z world coordinates against (z, y, x) arrays: every number below is worked out by hand."""
    import SimpleITK as sitk

    from medsight.metrics.froc import froc_luna16
    from medsight.tasks.detection.evaluate import result_records
    from medsight.tasks.detection.world import write_submission

    volume = np.full((20, 30, 40), -1000, np.int16)  # (z, y, x): 40 columns along x, 20 slices along z
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((0.5, 0.8, 2.0))  # x, y, z
    image.SetOrigin((-100.0, 20.0, -300.0))
    (tmp_path / "subset0").mkdir()
    sitk.WriteImage(image, str(tmp_path / "subset0" / "1.2.3.mhd"))
    # voxel centre (ITK index x=10, y=5, z=7) lies at x = -100 + 10 * 0.5 = -95, y = 20 + 5 * 0.8 = 24,
    # z = -300 + 7 * 2 = -286; in medsight's continuous array coordinates that centre is (z, y, x) = (7.5, 5.5, 10.5)
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,-95,24,-286,8\n",
                                              encoding="utf-8")
    data = read_luna16(tmp_path)
    # the box spans the 8 mm diameter: 4 / 2.0 = 2 slices, 4 / 0.8 = 5 rows, 4 / 0.5 = 8 columns either side
    np.testing.assert_allclose(data.boxes[0], [[5.5, 0.5, 2.5, 9.5, 10.5, 18.5]])
    # a prediction one column (0.5 mm) further along x, written as LUNA16's submission
    found = {"boxes": np.array([[5.5, 0.5, 3.5, 9.5, 10.5, 19.5]]), "scores": np.array([0.8]), "labels": np.array([0])}
    records = result_records("1.2.3", found, ["nodule"], data.load_geometry(0))
    write_submission(tmp_path / "submission.csv", records)
    rows = list(csv.DictReader(open(tmp_path / "submission.csv", encoding="utf-8")))
    assert [(r["seriesuid"], float(r["coordX"]), float(r["coordY"]), float(r["coordZ"]), float(r["probability"]))
            for r in rows] == [("1.2.3", -94.5, 24.0, -286.0, 0.8)]
    # scored from the submission's rows by LUNA16's rule: 0.5 mm from the centre, inside the 4 mm radius
    predictions = [{"case": r["seriesuid"], "centre_mm": (float(r["coordX"]), float(r["coordY"]), float(r["coordZ"])),
                    "score": float(r["probability"])} for r in rows]
    reference = [{"case": "1.2.3", "centre_mm": (-95.0, 24.0, -286.0), "diameter_mm": 8.0}]
    assert froc_luna16(predictions, reference)["cpm"] == 1.0
    moved = [{**predictions[0], "centre_mm": (-95.0, 28.5, -286.0)}]  # 4.5 mm off along y: outside the radius
    assert froc_luna16(moved, reference)["cpm"] == 0.0


@pytest.mark.slow  # 150 training steps on 32^3 patches: about two minutes on the shared CPUs
def test_a_small_synthetic_luna16_set_with_large_nodules_is_learned(tmp_path):
    """Nodules of 12-18 mm among vessels: after 150 steps the held-out scans' nodules are found at 8 FP per scan
    by LUNA16's rule in world mm (a detector that has not learned finds about 6% by chance there)."""
    from medsight import api
    from medsight.synthetic.luna16 import make_luna16

    data = make_luna16(tmp_path / "luna", seed=3, num_scans=12, shape=(24, 32, 32), spacing_xyz=(2.0, 2.0, 2.0),
                       diameters_mm=(12.0, 18.0), tubes=2, empty_every=0)
    run = tmp_path / "run"
    plan = api.plan(data, run)
    assert plan["max_pool"] and 10 <= plan["anchor_shapes_mm"][0][0] <= 15  # anchors of the nodules' size in mm
    plan["iterations_per_epoch"] = 15
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(data, run, epochs=10, seed=0)
    result = api.evaluate(run, split="test")
    m = result["metrics"]
    assert m["froc_rule"] == "luna16" and read_luna16(data).box_counts(read_luna16(data).splits["test"])[0] >= 5
    assert m["froc"]["8"] >= 0.9, m["froc"]
