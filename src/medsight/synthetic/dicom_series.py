"""Synthetic DICOM CT series written with pydicom: known pixels, positions, orientations and UIDs, for tests
and examples that need a series as a scanner would send it."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def write_series(folder: Path, volume: np.ndarray, series_uid: str | None = None, heights: Sequence[float] | None = None,
                 orientation: Sequence[float] = AXIAL, modality: str = "CT", description: str = "axial",
                 spacing: float = 0.5, study_uid: str = "1.2.826.0.1.3680043.8.498.1", syntax: str | None = None,
                 intercept: float = -1024.0) -> list[Path]:
    """One file per slice of volume (Z, Y, X; stored values), slice k at height heights[k] along the normal."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    series_uid = series_uid or generate_uid()
    heights = list(heights) if heights is not None else [2.0 * k for k in range(len(volume))]
    row, column = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, column)
    paths = []
    for k, (pixels, height) in enumerate(zip(volume, heights)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Test^Patient", "P1", "", "O"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.FrameOfReferenceUID = study_uid + ".9"
        ds.StudyDate, ds.StudyTime, ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "20260101", "120000", "1", "A1", ""
        ds.Modality, ds.SeriesDescription, ds.SeriesNumber, ds.InstanceNumber = modality, description, 1, k + 1
        ds.Manufacturer = "synthetic"
        ds.ImageOrientationPatient = [float(v) for v in orientation]
        ds.ImagePositionPatient = [float(v) for v in normal * height]
        ds.PixelSpacing = [spacing, spacing]
        ds.SliceThickness = 2.0
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, intercept, "HU"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PixelData = np.ascontiguousarray(pixels.astype(np.uint16)).tobytes()
        if syntax is not None:
            ds.compress(syntax)
        path = folder / f"slice_{k:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def series_of_volume(volume_path: Path, folder: Path, series_uid: str = "1.2.826.0.1.3680043.8.498.77",
                     spacing: float = 0.9, slice_gap: float = 1.2, scale: float = 100.0) -> Path:
    """A volume file (NIfTI, ...) written as a DICOM CT series in folder: HU = value * scale, rounded
    (stored = HU + 1024)."""
    import SimpleITK as sitk

    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(volume_path))).astype(np.float32)
    stored = np.clip(np.round(volume * scale) + 1024, 0, 65535).astype(np.uint16)
    write_series(folder, stored, series_uid=series_uid, spacing=spacing, heights=[slice_gap * k for k in range(len(stored))])
    return folder
