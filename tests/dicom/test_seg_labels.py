"""DICOM SEG files as segmentation labels: an MSD-style dataset.json pairing series folders with SEGs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsight.errors import MedsightError


def _seg_dataset(root, series_writer, ramp, cases=3):
    import pydicom

    from medsight.dicom.outputs import Algorithm, write_segmentation

    masks, training = {}, []
    labels = {0: "background", 1: "liver", 2: "tumour"}
    for k in range(cases):
        heights = [2.0 * z for z in range(6)][::-1]  # files named against the slice order
        paths = series_writer(root / "imagesTr" / f"case_{k}", ramp(6, 12), heights=heights,
                              series_uid=f"1.2.826.0.1.3680043.8.498.5{k}")
        sources = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in paths),
                         key=lambda d: float(d.ImagePositionPatient[2]))
        mask = np.zeros((6, 12, 12), np.uint8)
        mask[1:4, 2:8, 2:8] = 1
        mask[2, 4:6, 4 + k:6 + k] = 2
        write_segmentation(mask, sources, labels, {}, Algorithm("manual", "0", "0" * 64),
                           root / "labelsTr" / f"case_{k}.dcm")
        masks[f"case_{k}"] = mask
        training.append({"image": f"./imagesTr/case_{k}", "label": f"./labelsTr/case_{k}.dcm"})
    (root / "dataset.json").write_text(json.dumps({"name": "seg-labels", "tensorImageSize": "3D",
                                                   "modality": {"0": "CT"}, "labels": {str(k): v for k, v in labels.items()},
                                                   "numTraining": cases, "training": training}))
    return root, masks


def test_seg_labels_load_on_their_series(tmp_path, series_writer, ramp):
    from medsight import api

    root, masks = _seg_dataset(tmp_path / "data", series_writer, ramp)
    summary = api.check(root)
    assert summary["task"] == "segmentation" and summary["cases"] == 3
    _, dataset = api.read_dataset(root)
    for index, case_id in enumerate(dataset.case_ids):
        case = dataset.load_case(index)
        np.testing.assert_array_equal(case.label, masks[case_id])
        assert case.image.shape == (1, 6, 12, 12)


def test_seg_of_another_series_is_one_line(tmp_path, series_writer, ramp):
    import shutil

    from medsight import api

    root, _ = _seg_dataset(tmp_path / "data", series_writer, ramp)
    shutil.copy(root / "labelsTr" / "case_1.dcm", root / "labelsTr" / "case_0.dcm")
    _, dataset = api.read_dataset(root)
    with pytest.raises(MedsightError, match="case_0.dcm: references none of the slices of its image series"):
        dataset.load_case(dataset.case_ids.index("case_0"))
