"""RTSTRUCT files as segmentation labels: contours written with pydicom on a synthetic series are filled into
the mask drawn by hand (pixel centres inside the polygon, an inner contour as a hole)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medsight.errors import MedsightError

SPACING, GAP = 0.5, 2.0  # the series writer's pixel spacing and slice gap (mm)


def _square(z: float, low: float, high: float) -> list[float]:
    """A closed square contour with corners at voxel indices low..high (x and y), on the plane z mm."""
    corners = [(low, low), (high, low), (high, high), (low, high)]
    return [v for i, j in corners for v in (i * SPACING, j * SPACING, z)]


def write_rtstruct(path, sources, rois: dict[str, list[tuple[int, list[float]]]], series_uid=None) -> None:
    """A minimal RT Structure Set: one ROI per name, each with its (slice, contour points) on sources' slices."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

    first = sources[0]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = RTStructureSetStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID, "RTSTRUCT"
    for key in ("PatientName", "PatientID", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID"):
        setattr(ds, key, getattr(first, key))
    ds.SeriesInstanceUID, ds.SeriesNumber, ds.StructureSetLabel = generate_uid(), 2, "contours"
    series = Dataset()
    series.SeriesInstanceUID = series_uid or first.SeriesInstanceUID
    study = Dataset()
    study.ReferencedSOPInstanceUID, study.RTReferencedSeriesSequence = first.StudyInstanceUID, Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID, frame.RTReferencedStudySequence = first.FrameOfReferenceUID, Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    ds.StructureSetROISequence, ds.ROIContourSequence = Sequence(), Sequence()
    for number, (name, contours) in enumerate(rois.items(), 1):
        roi = Dataset()
        roi.ROINumber, roi.ROIName, roi.ROIGenerationAlgorithm = number, name, "MANUAL"
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        ds.StructureSetROISequence.append(roi)
        item = Dataset()
        item.ReferencedROINumber, item.ROIDisplayColor, item.ContourSequence = number, [255, 0, 0], Sequence()
        for slice_index, points in contours:
            contour = Dataset()
            image = Dataset()
            image.ReferencedSOPClassUID = sources[slice_index].SOPClassUID
            image.ReferencedSOPInstanceUID = sources[slice_index].SOPInstanceUID if series_uid is None else generate_uid()
            contour.ContourImageSequence = Sequence([image])
            contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", len(points) // 3
            contour.ContourData = points
            item.ContourSequence.append(contour)
        ds.ROIContourSequence.append(item)
    ds.save_as(path, enforce_file_format=True)


def _rtstruct_dataset(root, series_writer, ramp):
    """One case: a 6 x 12 x 12 series, liver on slices 1-3 (with a hole on slice 2), tumour on slice 2, a body
    outline that matches no label; returns (root, the mask drawn by hand)."""
    import pydicom

    heights = [GAP * z for z in range(6)][::-1]  # files named against the slice order
    paths = series_writer(root / "imagesTr" / "case_0", ramp(6, 12), heights=heights)
    sources = sorted((pydicom.dcmread(p, stop_before_pixels=True) for p in paths),
                     key=lambda d: float(d.ImagePositionPatient[2]))
    liver = [(z, _square(GAP * z, 1.5, 8.5)) for z in (1, 2, 3)] + [(2, _square(GAP * 2, 3.5, 5.5))]
    rois = {"Body": [(z, _square(GAP * z, -0.5, 11.5)) for z in range(6)], "Liver": liver,
            "tumour": [(2, _square(GAP * 2, 6.5, 8.5))]}
    (root / "labelsTr").mkdir(parents=True)
    write_rtstruct(root / "labelsTr" / "case_0.dcm", sources, rois)
    mask = np.zeros((6, 12, 12), np.uint8)
    mask[1:4, 2:9, 2:9] = 1  # pixel centres 2..8 lie inside corners 1.5..8.5
    mask[2, 4:6, 4:6] = 0  # the inner contour is a hole
    mask[2, 7:9, 7:9] = 2
    (root / "dataset.json").write_text(json.dumps({
        "name": "rtstruct-labels", "tensorImageSize": "3D", "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "tumour"}, "numTraining": 1,
        "training": [{"image": "./imagesTr/case_0", "label": "./labelsTr/case_0.dcm"}]}))
    return root, sources, mask


def test_rtstruct_contours_fill_the_expected_mask(tmp_path, series_writer, ramp):
    from medsight import api

    root, _, mask = _rtstruct_dataset(tmp_path / "data", series_writer, ramp)
    _, dataset = api.read_dataset(root)
    case = dataset.load_case(0)
    np.testing.assert_array_equal(case.label, mask)
    assert case.image.shape == (1, 6, 12, 12)


def test_rtstruct_of_another_series_or_off_slice_is_one_line(tmp_path, series_writer, ramp):
    from medsight import api

    root, sources, _ = _rtstruct_dataset(tmp_path / "data", series_writer, ramp)
    label = root / "labelsTr" / "case_0.dcm"
    write_rtstruct(label, sources, {"liver": [(1, _square(GAP * 1, 1.5, 8.5))]}, series_uid="1.2.3.4")
    _, dataset = api.read_dataset(root)
    with pytest.raises(MedsightError, match="case_0.dcm: references another series than its image"):
        dataset.load_case(0)
    write_rtstruct(label, sources, {"liver": [(1, _square(GAP * 1.5, 1.5, 8.5))]})
    with pytest.raises(MedsightError, match=r"ROI 'liver' has a contour at slice position 1.50, not on a slice"):
        dataset.load_case(0)
    write_rtstruct(label, sources, {"Body": [(1, _square(GAP * 1, 1.5, 8.5))]})
    with pytest.raises(MedsightError, match=r"has no ROI named as a label of dataset.json \(ROIs: Body; labels: liver, tumour\)"):
        dataset.load_case(0)
