"""A CT DICOM series with a Pascal VOC box per annotated slice, each XML named by the slice's SOPInstanceUID
(the layout of TCIA's Lung-PET-CT-Dx annotations), read as a volume in HU with 3D boxes.

The series is read by SimpleITK (rescale slope and intercept applied, so values are HU; spacing, origin and
direction kept). Each slice's place in the volume comes from its ImagePositionPatient, not its file name.
Boxes on consecutive slices that overlap in-plane belong to one object, whose 3D box spans them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError


def slice_positions(series: Path) -> dict[str, np.ndarray]:
    """SOPInstanceUID -> ImagePositionPatient (mm) of every DICOM file in a series folder."""
    import pydicom

    out = {}
    for file in sorted(series.iterdir()):
        if not file.is_file():
            continue
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except Exception:  # pydicom raises several types for a file that is not DICOM
            continue
        if "SOPInstanceUID" in ds and "ImagePositionPatient" in ds:
            out[str(ds.SOPInstanceUID)] = np.asarray([float(v) for v in ds.ImagePositionPatient])
    return out


def overlap(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(np.minimum(a[2:], b[2:]) > np.maximum(a[:2], b[:2])))


def join_slices(found: list[tuple[int, np.ndarray, str]]) -> list[tuple[np.ndarray, str]]:
    """(slice, (y0, x0, y1, x1), class) per slice box -> (z0, y0, x0, z1, y1, x1) per object."""
    objects: list[dict[str, Any]] = []
    for z, box, name in sorted(found, key=lambda f: f[0]):
        match = next((o for o in objects if o["name"] == name and o["z1"] == z and overlap(o["last"], box)), None)
        if match is None:
            objects.append({"name": name, "z0": z, "z1": z + 1, "last": box, "yx": box.copy()})
        else:
            match.update(z1=z + 1, last=box, yx=np.concatenate([np.minimum(match["yx"][:2], box[:2]),
                                                               np.maximum(match["yx"][2:], box[2:])]))
    return [(np.array([o["z0"], o["yx"][0], o["yx"][1], o["z1"], o["yx"][2], o["yx"][3]], float), o["name"])
            for o in objects]


def read_series_with_slice_boxes(series: Path, annotations: Path):
    """(Image in HU, (N, 6) boxes in continuous array-order voxels, class name per box, slices annotated)."""
    from medsight.io.detection import read_voc_annotation
    from medsight.io.geometry import Geometry
    from medsight.io.images import read_image

    image = read_image(series)
    if image.array.ndim != 4:
        raise MedsightError(series, "is not a volume (one DICOM series of several slices)")
    geometry = Geometry(tuple(reversed(image.array.shape[1:])), image.spacing, image.origin, image.direction)
    found = []
    for uid, position in slice_positions(series).items():
        xml = annotations / f"{uid}.xml"
        if not xml.is_file():
            continue
        record = read_voc_annotation(xml)
        if tuple(record["shape"]) != tuple(image.array.shape[2:]):
            raise MedsightError(xml, f"is for a {record['shape'][1]} x {record['shape'][0]} slice; the series has "
                                     f"{image.array.shape[3]} x {image.array.shape[2]}")
        z = int(np.floor(geometry.to_voxel(position)[0][0]))
        found += [(z, box, name) for box, name in zip(record["boxes"], record["names"])]
    objects = join_slices(found)
    boxes = np.asarray([b for b, _ in objects], float).reshape(-1, 6)
    return image, boxes, [n for _, n in objects], len({f[0] for f in found})
