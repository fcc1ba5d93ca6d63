"""Coded concepts of DICOM results from the data set: dataset.json "label_codes" goes into the plan and onto
the SEG's segments; a --codes file overrides it class by class; a code for a class that is not a label is
one line."""

from __future__ import annotations

import json
import shutil

import pytest

from medsight.errors import MedsightError

DATASET_CODES = {  # blob as a cyst, box as a calculus: neither is a word the SNOMED table knows
    "blob": {"category": ["SCT", "49755003", "Morphologically Abnormal Structure"], "type": ["SCT", "367643001", "Cyst"]},
    "box": {"category": ["SCT", "49755003", "Morphologically Abnormal Structure"], "type": ["SCT", "56381008", "Calculus"]}}


def _data_with_codes(data, folder, codes):
    copy = shutil.copytree(data, folder, ignore=shutil.ignore_patterns("splits_final.json"))
    meta = json.loads((copy / "dataset.json").read_text(encoding="utf-8"))
    meta["label_codes"] = codes
    (copy / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return copy


def _segment_types(path) -> dict[str, str]:
    import highdicom as hd

    seg = hd.seg.segread(path)
    return {d.SegmentLabel: d.SegmentedPropertyTypeCodeSequence[0].CodeValue for d in seg.SegmentSequence}


def test_dataset_codes_reach_the_seg_and_a_codes_file_overrides_them(tiny_segmentation_run, shape_codes, ct_series_of,
                                                                     tmp_path):
    from medsight import api

    run, data = tiny_segmentation_run
    planned = api.plan(_data_with_codes(data, tmp_path / "data", DATASET_CODES), tmp_path / "planned")
    plan = json.loads((tmp_path / "planned" / "plan.json").read_text(encoding="utf-8"))
    assert plan["label_codes"] == DATASET_CODES, planned
    # the trained run given the plan entry that planning wrote (training is not needed to check what is coded)
    coded_run = shutil.copytree(run, tmp_path / "coded-run")
    trained_plan = json.loads((coded_run / "plan.json").read_text(encoding="utf-8"))
    trained_plan["label_codes"] = plan["label_codes"]
    (coded_run / "plan.json").write_text(json.dumps(trained_plan), encoding="utf-8")
    ct_series_of(sorted((data / "imagesTs").glob("*.nii.gz"))[0], tmp_path / "study" / "ct")

    [record] = api.predict([coded_run], [tmp_path / "study"], tmp_path / "out", fmt="dicom-seg")
    assert _segment_types(record["dicom_seg"]) == {"blob": "367643001", "box": "56381008"}
    [record] = api.predict([coded_run], [tmp_path / "study"], tmp_path / "out2", fmt="dicom-seg", codes=shape_codes)
    assert _segment_types(record["dicom_seg"]) == {"blob": "52988006", "box": "272673000"}  # the file's Lesion, Bone
    with pytest.raises(MedsightError, match="class 'blob' has no known SNOMED code; give a mapping file with --codes"):
        api.predict([run], [tmp_path / "study"], tmp_path / "out3", fmt="dicom-seg")  # no codes anywhere


def test_dataset_codes_for_unknown_classes_are_one_line(tiny_segmentation_run, tmp_path):
    from medsight import api

    _, data = tiny_segmentation_run
    bad = _data_with_codes(data, tmp_path / "data", {"liver": DATASET_CODES["blob"]})
    with pytest.raises(MedsightError, match=r"dataset.json: codes name class 'liver', which is not a label"):
        api.read_dataset(bad)
    wrong = _data_with_codes(data, tmp_path / "data2", {"blob": {"category": ["SCT", "1"], "type": []}})
    with pytest.raises(MedsightError, match=r"class 'blob': 'category' must be \[coding scheme, code value, meaning\]"):
        api.read_dataset(wrong)
