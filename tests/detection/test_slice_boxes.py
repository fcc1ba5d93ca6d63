"""Boxes per DICOM slice -> 3D boxes, and the real Lung-PET-CT-Dx study read in HU with its geometry."""

from __future__ import annotations

import numpy as np

from medsight.io.slice_boxes import join_slices


def test_consecutive_overlapping_slice_boxes_join_into_one_object():
    found = [(4, np.array([10.0, 10, 20, 20]), "A"), (5, np.array([12.0, 8, 22, 18]), "A"),
             (6, np.array([11.0, 9, 21, 19]), "A"),
             (6, np.array([40.0, 40, 45, 45]), "A"),  # same slice, elsewhere: another object
             (9, np.array([10.0, 10, 20, 20]), "A")]  # a gap of two slices: another object
    objects = join_slices(found)
    assert [list(b) for b, _ in objects] == [[4, 10, 8, 7, 22, 20], [6, 40, 40, 7, 45, 45], [9, 10, 10, 10, 20, 20]]


def test_lung_pet_ct_dx_in_hu_with_3d_boxes(shared_data):
    from medsight.io.geometry import Geometry
    from medsight.io.slice_boxes import read_series_with_slice_boxes

    root = shared_data("lung_pet_ct_dx_ct_dicom")
    study = next(root.rglob("*ThoraxRoutine Adult*"))
    b40 = next(s for s in study.iterdir() if "B40f" in s.name)
    image, boxes, names, slices = read_series_with_slice_boxes(b40, root / "Annotation" / "A0002")
    assert image.array.shape == (1, 30, 512, 512) and image.array.min() == -1024  # HU: air at the rescale floor
    assert np.allclose(image.spacing, (0.646484375, 0.646484375, 8.0))
    assert slices == 10 and names == ["A"] and boxes.shape == (1, 6)
    assert boxes[0, 3] - boxes[0, 0] == 10  # the ten annotated slices are consecutive: one tumour
    # every annotated slice sits where its ImagePositionPatient says: the volume's slice is that file's HU
    import pydicom

    from medsight.io.detection import read_voc_annotation

    geometry = Geometry(tuple(reversed(image.array.shape[1:])), image.spacing, image.origin, image.direction)
    for file in sorted(b40.iterdir()):
        ds = pydicom.dcmread(file)
        xml = root / "Annotation" / "A0002" / f"{ds.SOPInstanceUID}.xml"
        if not xml.is_file():
            continue
        z = int(np.floor(geometry.to_voxel([float(v) for v in ds.ImagePositionPatient])[0][0]))
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert np.array_equal(image.array[0, z], hu) and boxes[0, 0] <= z < boxes[0, 3]
        y0, x0, y1, x1 = read_voc_annotation(xml)["boxes"][0].astype(int)
        assert np.median(hu[y0:y1, x0:x1]) > -200 > np.median(hu)  # the slice's box holds the mass, not lung
    extent = (geometry.to_world(boxes[:, 3:]) - geometry.to_world(boxes[:, :3]))[0]
    assert 25 < np.abs(extent).min() and np.abs(extent).max() < 90  # the README's 28-78 mm masses
