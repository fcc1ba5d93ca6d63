"""DICOM RT Structure Sets (RTSTRUCT) as training labels: each ROI's closed planar contours are filled on the
slices of the case's image series, in that series' geometry.

Contour points (patient coordinates, mm) are mapped to voxel indices with the series' origin, spacing and
direction; a contour must lie on one slice of the series (within a tenth of the slice gap). A pixel is inside
when its centre is inside the polygon (skimage.draw.polygon); contours of one ROI on one slice combine by
even-odd (a contour inside another is a hole), as the DICOM standard's CLOSED_PLANAR contours are drawn by
treatment planning systems. ROIs map to label values by name (ROIName = a name in dataset.json, case-
insensitive); ROIs with other names (body outline, couch) are left out; a later label wins where two overlap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError

SLICE_TOLERANCE = 0.1  # of the slice gap: how far off a slice's plane a contour may lie


def read_rtstruct_label(path: Path, reference: Any, labels: dict[int, str]):
    """The RTSTRUCT at path as a medsight Image (one channel of label values) on reference's grid."""
    from medsight.io.dicom_series import read_header
    from medsight.io.images import Image

    if reference.spatial_dims != 3 or "dicom_series" not in reference.stored:
        raise MedsightError(path, "is an RTSTRUCT, but its image is not a DICOM series; contours need the series "
                                  "they were drawn on")
    try:
        structure = read_header(path)
        rois = {int(r.ROINumber): str(r.ROIName) for r in structure.StructureSetROISequence}
        contours = list(structure.ROIContourSequence)
    except (AttributeError, TypeError, ValueError) as exc:
        raise MedsightError(path, f"is not a readable RTSTRUCT ({str(exc).splitlines()[0][:120]})") from None
    _check_series(path, structure, reference)
    by_name = {name.lower(): value for value, name in labels.items() if value != 0}
    wanted = {number: by_name[name.lower()] for number, name in rois.items() if name.lower() in by_name}
    if not wanted:
        raise MedsightError(path, f"has no ROI named as a label of dataset.json (ROIs: {', '.join(rois.values())}; "
                                  f"labels: {', '.join(n for v, n in labels.items() if v)})")
    to_index = _index_transform(reference)
    label = np.zeros(reference.shape, np.uint8)
    for item in sorted(contours, key=lambda c: wanted.get(int(c.ReferencedROINumber), -1)):  # later labels win
        value = wanted.get(int(item.ReferencedROINumber))
        if value is None:
            continue
        filled = np.zeros(reference.shape, bool)
        for contour in getattr(item, "ContourSequence", []):
            if str(getattr(contour, "ContourGeometricType", "CLOSED_PLANAR")) != "CLOSED_PLANAR":
                continue  # points and open polylines mark places, not areas
            points = np.asarray(contour.ContourData, dtype=float).reshape(-1, 3)
            z, rows, columns = _on_slice(to_index(points), reference.shape, path, rois[int(item.ReferencedROINumber)])
            filled[z] ^= _fill(rows, columns, reference.shape[1:])
        label[filled] = value
    return Image(label[None], path, "rtstruct", reference.spacing, reference.origin, reference.direction, "grey",
                 dict(reference.stored))


def _check_series(path: Path, structure: Any, reference: Any) -> None:
    """The structure set must reference the image's series (or slices of it)."""
    series = {str(s.SeriesInstanceUID) for f in getattr(structure, "ReferencedFrameOfReferenceSequence", [])
              for st in getattr(f, "RTReferencedStudySequence", []) for s in getattr(st, "RTReferencedSeriesSequence", [])}
    slices = {str(i.ReferencedSOPInstanceUID) for c in structure.ROIContourSequence
              for k in getattr(c, "ContourSequence", []) for i in getattr(k, "ContourImageSequence", [])}
    if reference.stored["dicom_series"] in series or slices & set(reference.stored.get("dicom_sop_uids", [])):
        return
    if series or slices:
        raise MedsightError(path, f"references another series than its image (series {reference.stored['dicom_series']})")


def _index_transform(reference: Any):
    """Patient coordinates (N, 3; mm) -> continuous (x, y, z) voxel indices of reference (SimpleITK's geometry)."""
    origin = np.asarray(reference.origin, float)
    spacing = np.asarray(reference.spacing, float)
    direction = np.asarray(reference.direction, float).reshape(3, 3)
    inverse = np.linalg.inv(direction)
    return lambda points: ((points - origin) @ inverse.T) / spacing


def _on_slice(index: np.ndarray, shape: tuple[int, ...], path: Path, roi: str) -> tuple[int, np.ndarray, np.ndarray]:
    z = float(np.mean(index[:, 2]))
    k = int(round(z))
    if np.abs(index[:, 2] - k).max() > SLICE_TOLERANCE or not 0 <= k < shape[0]:
        raise MedsightError(path, f"ROI {roi!r} has a contour at slice position {z:.2f}, not on a slice of its series "
                                  f"(0..{shape[0] - 1})")
    return k, index[:, 1], index[:, 0]


def _fill(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    from skimage.draw import polygon

    inside = np.zeros(shape, bool)
    rr, cc = polygon(rows, columns, shape=shape)
    inside[rr, cc] = True
    return inside
