"""Recognise a data set's format and task from its folder or file (DESIGN.md: never from a flag)."""

from __future__ import annotations

from pathlib import Path

from medsight.errors import MedsightError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".nii", ".nii.gz", ".nrrd", ".mha", ".mhd")


def detect_format(path: str | Path) -> tuple[str, str]:
    """Return (format, task) for a data set path, or raise MedsightError saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise MedsightError(path, "no such file or directory")
    if path.is_file():
        if path.suffix == ".npz":
            return "medmnist", "classification"
        if path.name == "labels.csv":
            return "csv", "classification"
        if path.name == "annotations.json":
            return "coco", "detection"
        raise MedsightError(path, "is not a data set: expected a MedMNIST .npz, a labels.csv or a folder")
    if (path / "dataset.json").is_file() and (path / "imagesTr").is_dir():
        labels = path / "labelsTr"
        if labels.is_dir() and any(labels.glob("*.json")):
            return "nndetection", "detection"
        return "nnunet", "segmentation"
    if (path / "annotations.json").is_file():
        return "coco", "detection"
    if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
        return "voc", "detection"
    if (path / "labels.csv").is_file():
        return "csv", "classification"
    from medsight.io.luna16 import is_luna16

    if is_luna16(path):
        return "luna16", "detection"
    npz = sorted(path.glob("*.npz"))
    if len(npz) == 1:
        return "medmnist", "classification"
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if subdirs:
        return "imagefolder", "classification"
    raise MedsightError(path, "is not a recognised data set (expected a MedMNIST .npz, class folders, labels.csv, "
                              "an nnU-Net folder with dataset.json and imagesTr/, COCO annotations.json, Pascal VOC or LUNA16's annotations.csv)")
