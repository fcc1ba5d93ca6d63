"""The patient a case belongs to, read from its files (DICOM PatientID), for patient-grouped splits."""

from __future__ import annotations

from pathlib import Path

from medsight.io.images import is_dicom_file


def dicom_patient(path: Path) -> str | None:
    """PatientID of a DICOM file, or of the first file of a DICOM series folder; None for other files."""
    path = Path(path)
    if path.is_dir():
        path = next((p for p in sorted(path.iterdir()) if p.is_file() and is_dicom_file(p)), path)
    if not path.is_file() or not is_dicom_file(path):
        return None
    import pydicom

    try:
        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID")
    except Exception:  # an unreadable header is reported by the image reader; here it only means "no patient"
        return None
    return str(value).strip() or None
