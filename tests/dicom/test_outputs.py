"""DICOM results: SEG read back voxel for voxel, TID 1500 reports referencing the source series."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsight.errors import MedsightError


def _predict_seg(tiny_segmentation_run, shape_codes, ct_series_of, tmp_path):
    from medsight import api

    run, data = tiny_segmentation_run
    series = ct_series_of(sorted((data / "imagesTs").glob("*.nii.gz"))[0], tmp_path / "study" / "ct")
    records = api.predict([run], [tmp_path / "study"], tmp_path / "out", fmt="dicom-seg", codes=shape_codes)
    return run, series, records


def test_dicom_seg_matches_the_mask_and_references_the_series(tiny_segmentation_run, shape_codes, ct_series_of, tmp_path):
    import highdicom as hd
    import pydicom

    from medsight.io.images import read_image

    run, series, records = _predict_seg(tiny_segmentation_run, shape_codes, ct_series_of, tmp_path)
    record = records[0]
    seg = hd.seg.segread(record["dicom_seg"])
    sources = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in series.iterdir()),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.826.0.1.3680043.8.498.77"
    assert seg.StudyInstanceUID == sources[0].StudyInstanceUID
    mask = read_image(record["output"]).array[0]
    back = seg.get_pixels_by_source_instance([s.SOPInstanceUID for s in sources], combine_segments=True, relabel=False)
    np.testing.assert_array_equal(back, mask)
    segments = {d.SegmentNumber: d for d in seg.SegmentSequence}
    assert [segments[n].SegmentLabel for n in (1, 2)] == ["blob", "box"]
    assert segments[1].SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    algorithm = segments[1].SegmentationAlgorithmIdentificationSequence[0]
    import hashlib

    from medsight.run import RunFolder

    digest = hashlib.sha256(RunFolder(run).weights_path.read_bytes()).hexdigest()
    assert "dynunet_tiny" in algorithm.AlgorithmName and algorithm.AlgorithmVersion == __import__("medsight").__version__
    parameters = algorithm.AlgorithmParameters
    assert parameters == f"weights_sha256={digest}" and seg.DeviceSerialNumber == digest[:16]
    # the volumes report: one volumetric group per class, each on its segment, values as in predictions.json
    report = pydicom.dcmread(record["dicom_sr"])
    parsed = hd.sr.srread(record["dicom_sr"])
    groups = parsed.content.get_volumetric_roi_measurement_groups()
    volumes = {g.tracking_identifier: g.get_measurements()[0].value for g in groups}
    expected = json.loads((tmp_path / "out" / "predictions.json").read_text(encoding="utf-8"))[0]["volume_mm3"]
    assert volumes == pytest.approx({f"{k} volume": v for k, v in expected.items()}, abs=1e-3)
    assert report.SeriesInstanceUID != seg.SeriesInstanceUID and report.StudyInstanceUID == seg.StudyInstanceUID


def test_seg_that_differs_from_its_mask_fails_loudly(tmp_path, series_writer, ramp):
    import pydicom

    from medsight.dicom.outputs import Algorithm, check_segmentation, write_segmentation

    paths = series_writer(tmp_path / "s", ramp(3))
    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]
    mask = np.zeros((3, 8, 8), np.uint8)
    mask[1, 2:5, 2:5] = 1
    path = tmp_path / "seg.dcm"
    write_segmentation(mask, sources, {0: "background", 1: "liver"}, {}, Algorithm("m", "0", "0" * 64), path)
    other = mask.copy()
    other[0, 0, 0] = 1
    with pytest.raises(MedsightError, match="differs from the predicted mask \\(1 voxels\\)"):
        check_segmentation(path, other, sources, [1])
    assert not path.exists()


def test_unknown_class_without_mapping_is_one_line(tmp_path, series_writer, ramp):
    import pydicom

    from medsight.dicom.outputs import Algorithm, write_segmentation

    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in series_writer(tmp_path / "s", ramp(2))]
    with pytest.raises(MedsightError, match="class 'blob' has no known SNOMED code; give a mapping file"):
        write_segmentation(np.zeros((2, 8, 8), np.uint8), sources, {0: "bg", 1: "blob"}, {},
                           Algorithm("m", "0", "0" * 64), tmp_path / "seg.dcm")


def test_known_names_get_snomed_codes():
    from medsight.dicom.codes import class_codes

    category, kind = class_codes("left_kidney", {})
    assert (kind.value, kind.scheme_designator, category.value) == ("64033007", "SCT", "91723000")
    assert class_codes("tumour", {})[1].value == "108369006"


def test_detection_report_places_centres_in_patient_space(tmp_path, series_writer, ramp):
    import highdicom as hd
    import pydicom

    from medsight.dicom.outputs import Algorithm, write_detection_report

    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in series_writer(tmp_path / "s", ramp(3))]
    findings = [{"category": "nodule", "score": 0.875, "bbox": [1, 1, 0, 2, 2, 1],
                 "bbox_world": {"center": [10.0, -5.5, 2.0]}}]
    path = tmp_path / "sr.dcm"
    write_detection_report(findings, sources, {}, Algorithm("m", "0", "0" * 64), path)
    report = hd.sr.srread(path)
    group = report.content.get_volumetric_roi_measurement_groups()[0]
    assert group.finding_type.value == "27925004"  # Nodule
    assert group.get_measurements()[0].value == pytest.approx(0.875)
    np.testing.assert_allclose(group.roi.graphic_data, [[10.0, -5.5, 2.0]])
    assert report.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].SeriesInstanceUID == \
        sources[0].SeriesInstanceUID


def test_classification_report_holds_label_and_probabilities(tmp_path, series_writer, ramp):
    import highdicom as hd
    import pydicom

    from medsight.dicom.outputs import Algorithm, write_classification_report

    sources = [pydicom.dcmread(p, stop_before_pixels=True) for p in series_writer(tmp_path / "s", ramp(3))]
    record = {"class": "tumour", "probabilities": {"normal": 0.25, "tumour": 0.75}}
    path = tmp_path / "sr.dcm"
    write_classification_report(record, sources, {}, Algorithm("m", "0", "0" * 64), path)
    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    values = {g.tracking_identifier: g.get_measurements()[0].value for g in groups}
    assert values == pytest.approx({"p(normal)": 0.25, "p(tumour)": 0.75})
    decided = [g for g in groups if g.get_qualitative_evaluations()]
    assert len(decided) == 1 and decided[0].get_qualitative_evaluations()[0].value.value == "108369006"


def test_dicom_format_refuses_non_dicom_inputs(tiny_segmentation_run, tmp_path):
    from medsight import api

    run, data = tiny_segmentation_run
    with pytest.raises(MedsightError, match="is not DICOM: --format dicom-seg writes DICOM results for DICOM inputs only"):
        api.predict([run], [sorted((data / "imagesTs").glob("*.nii.gz"))[0]], tmp_path / "out", fmt="dicom-seg")
