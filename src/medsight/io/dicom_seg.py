"""DICOM Segmentations (SEG) as training labels: a SEG's segments become a label map on its image's grid.

The SEG must reference the slices of the case's image series (as SEGs made on that series do); frames are
placed by the SOPInstanceUID they reference, not by their order in the file. Segments map to the data
set's label values by name (SegmentLabel = a name in dataset.json), else by segment number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError


def label_modality(path: Path) -> str | None:
    """"SEG" or "RTSTRUCT" for a DICOM label file of either kind, else None (a label image)."""
    from medsight.io.images import is_dicom_file

    if not (path.is_file() and is_dicom_file(path)):
        return None
    from medsight.io.dicom_series import read_header

    try:
        modality = str(read_header(path, stop_before_pixels=True, specific_tags=["Modality"]).get("Modality", ""))
    except Exception:  # not readable by pydicom: the image reader names the problem
        return None
    return modality if modality in ("SEG", "RTSTRUCT") else None


def dicom_label_values(path: Path, labels: dict[int, str]) -> list[int] | None:
    """The label values a SEG's segments or an RTSTRUCT's contoured ROIs stand for, read from the header
    (no pixels, no contours filled); None when path is not a DICOM label file."""
    from medsight.io.dicom_series import read_header

    kind = label_modality(path)
    if kind is None:
        return None
    header = read_header(path, stop_before_pixels=True)
    by_name = {name.lower(): value for value, name in labels.items()}
    if kind == "SEG":
        return [by_name.get(str(s.SegmentLabel).lower(), int(s.SegmentNumber)) for s in header.SegmentSequence]
    names = {int(r.ROINumber): str(r.ROIName).lower() for r in getattr(header, "StructureSetROISequence", [])}
    return [by_name[names[int(c.ReferencedROINumber)]] for c in getattr(header, "ROIContourSequence", [])
            if names.get(int(c.ReferencedROINumber)) in by_name and getattr(c, "ContourSequence", None)]


def read_seg_label(path: Path, reference: Any, labels: dict[int, str]):
    """The SEG at path as a medsight Image (one channel of label values) in reference's geometry."""
    import highdicom as hd

    from medsight.io.images import Image

    uids = reference.stored.get("dicom_sop_uids")
    if not uids:
        raise MedsightError(path, "is a DICOM SEG, but its image is not a DICOM series of single-frame slices; "
                                  "SEG labels need the series they were drawn on")
    try:
        seg = hd.seg.segread(path)
    except Exception as exc:  # highdicom raises several types for files that are not a valid SEG
        raise MedsightError(path, f"is not a readable DICOM SEG ({str(exc).splitlines()[0][:160]})") from None
    by_name = {name: value for value, name in labels.items()}
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    values = {}
    for item in seg.SegmentSequence:
        value = by_name.get(str(item.SegmentLabel), int(item.SegmentNumber))
        if value not in labels or value == 0:
            raise MedsightError(path, f"segment {item.SegmentNumber} ({item.SegmentLabel!r}) matches no label of "
                                      f"dataset.json ({', '.join(f'{k}: {v}' for k, v in labels.items())})")
        values[int(item.SegmentNumber)] = value
    referenced = {str(i.ReferencedSOPInstanceUID) for s in seg.ReferencedSeriesSequence
                  for i in s.ReferencedInstanceSequence}
    if not referenced & set(uids):
        raise MedsightError(path, "references none of the slices of its image series")
    try:
        stack = seg.get_pixels_by_source_instance(source_sop_instance_uids=list(uids), segment_numbers=numbers,
                                                  combine_segments=False, assert_missing_frames_are_empty=True)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise MedsightError(path, f"cannot be placed on its image series ({str(exc).splitlines()[0][:160]})") from None
    label = np.zeros(stack.shape[:3], np.uint8)
    for position, number in enumerate(numbers):  # a later segment wins where two overlap
        label[stack[..., position] > 0] = values[number]
    shape = reference.shape
    label = label.reshape(shape)
    return Image(label[None], path, "dicom-seg", reference.spacing, reference.origin, reference.direction,
                 "grey", dict(reference.stored))
