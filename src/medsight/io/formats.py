"""The data set formats medsight reads: each one a sniffer, a reader and the task it feeds.

A format is recognised from the folder or file itself, never from a flag. Sniffers are tried in the order
the formats were registered (the built-in ones first, then those of plugins: see medsight.plugins), except
the fallbacks (a folder of class folders matches almost anything), which are tried last.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medsight.data.dataset import TaskDataset
from medsight.errors import MedsightError
from medsight.io.images import is_hidden
from medsight.plugins import load_plugins

# What a folder may be, for messages that tell a user which layouts medsight reads.
KNOWN_LAYOUTS = ("a MedMNIST .npz, class folders (two or more classes), labels.csv (or a CSV of image and label columns), an nnU-Net folder with "
                 "dataset.json and imagesTr/, images with masks by name (images/ + masks/, or x.png + x_mask.png), COCO annotations.json (or annotations/instances_*.json), Pascal VOC (also image + .xml pairs in one folder), a CSV of boxes (image,x1,y1,x2,y2,label), LUNA16's annotations.csv, or a YOLO folder "
                 "(a .names file with a .txt beside each image, or Ultralytics data.yaml with images/ and labels/)")

# sniff(path) -> bool; read(path, fmt, seed, fold) -> TaskDataset (splits follow the data, not the seed), or "module:function" imported when used
Sniffer = Callable[[Path], bool]


@dataclass(frozen=True)
class Format:
    name: str
    task: str
    sniff: Sniffer
    read: Callable[..., TaskDataset] | str
    fallback: bool = False

    def reader(self) -> Callable[..., TaskDataset]:
        if callable(self.read):
            return self.read
        module, function = self.read.split(":")
        return getattr(importlib.import_module(module), function)


_FORMATS: dict[str, Format] = {}


def register_format(name: str, task: str, sniff: Sniffer, read: Callable[..., TaskDataset] | str,
                    fallback: bool = False) -> None:
    """Teach medsight a data set format: ``read(path, fmt, seed=, fold=)`` returns the task's TaskDataset."""
    _FORMATS[name] = Format(name, task, sniff, read, fallback)


def formats() -> list[Format]:
    """The registered formats in the order their sniffers are tried."""
    load_plugins()
    values = list(_FORMATS.values())
    return [f for f in values if not f.fallback] + [f for f in values if f.fallback]


def detect_format(path: str | Path) -> tuple[str, str]:
    """Return (format, task) for a data set path, or raise MedsightError saying what was expected."""
    path = Path(path)
    if not path.exists():
        raise MedsightError(path, "no such file or directory")
    for fmt in formats():
        if fmt.sniff(path):
            return fmt.name, fmt.task
    if path.is_file():
        raise MedsightError(path, "is not a data set: expected a MedMNIST .npz, a labels.csv, a COCO .json or a folder")
    raise MedsightError(path, f"is not a recognised data set (expected {KNOWN_LAYOUTS})")


def read_dataset(path: str | Path, seed: int = 0, fold: int = 0) -> TaskDataset:
    """Recognise the format of a data set and read it; ``dataset.task`` names the task it feeds."""
    name, _ = detect_format(path)
    return _FORMATS[name].reader()(Path(path), name, seed=seed, fold=fold)


# the built-in formats ---------------------------------------------------------

def _file_or_child(path: Path, name: str) -> bool:
    return path.name == name if path.is_file() else (path / name).is_file()


def _coco(path: Path) -> bool:
    """annotations.json, CVAT's and COCO 2017's annotations/instances_*.json, or a COCO .json of any name."""
    from medsight.io.coco_layout import coco_files, looks_like_coco

    return looks_like_coco(path) if path.is_file() else bool(coco_files(path))


def _nnunet_folder(path: Path) -> bool:
    return path.is_dir() and (path / "dataset.json").is_file() and (path / "imagesTr").is_dir()


def _nndetection_folder(path: Path) -> bool:
    labels = path / "labelsTr"
    return _nnunet_folder(path) and labels.is_dir() and any(labels.glob("*.json"))


def _medmnist(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".npz"
    return len(list(path.glob("*.npz"))) == 1


def _voc_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
        return True
    from medsight.io.detection import is_flat_voc  # labelImg's image + same-stem .xml pairs in one folder

    return is_flat_voc(path)


def _luna16_folder(path: Path) -> bool:
    from medsight.io.luna16 import is_luna16

    return path.is_dir() and is_luna16(path)


def _class_folders(path: Path) -> bool:
    """Class folders; a lone folder (images/, subset0/) is some other layout, refused rather than read as one class."""
    if not path.is_dir():
        return False
    from medsight.io.imagefolder import split_of_folder

    subdirs = [p for p in path.iterdir() if p.is_dir() and not is_hidden(p.name)]
    if len(subdirs) == 1 and not split_of_folder(subdirs[0]):
        raise MedsightError(path, f"has one folder ({subdirs[0].name}/), which would make a classification set of a "
                                  f"single class; expected {KNOWN_LAYOUTS}")
    return bool(subdirs)


def _yolo_folder(path: Path) -> bool:
    from medsight.io.yolo import is_yolo

    return path.is_dir() and is_yolo(path)


def _box_csv(path: Path) -> bool:
    from medsight.io.box_csv import is_box_csv

    return is_box_csv(path)


def _read_medmnist(path: Path, fmt: str, seed: int = 0, fold: int = 0) -> TaskDataset:
    from medsight.io.classification import read_medmnist

    return read_medmnist(path, fold)


def _read_classification(path: Path, fmt: str, seed: int = 0, fold: int = 0) -> TaskDataset:
    from medsight.io.imagefolder import read_classification

    return read_classification(path, fmt, fold)


def _read_segmentation(path: Path, fmt: str, seed: int = 0, fold: int = 0) -> TaskDataset:
    if fmt == "mask_pairs":
        from medsight.io.mask_pairs import read_mask_pairs

        return read_mask_pairs(path, fold=fold)
    from medsight.io.segmentation import read_segmentation

    return read_segmentation(path, fold=fold)


def _label_table(path: Path) -> bool:
    """A CSV of any name with a path and a label column (Kaggle's train.csv beside its images)."""
    from medsight.io.labels_csv import label_tables

    try:
        return bool(label_tables(path))
    except MedsightError:
        return True  # several tables without split names: the reader says which to choose


def _mask_pairs(path: Path) -> bool:
    from medsight.io.mask_pairs import is_mask_pairs

    return is_mask_pairs(path)


def _read_detection(path: Path, fmt: str, seed: int = 0, fold: int = 0) -> TaskDataset:
    from medsight.io.detection import read_detection

    return read_detection(path, fmt, fold)


register_format("nndetection", "detection", _nndetection_folder, _read_detection)
register_format("nnunet", "segmentation", _nnunet_folder, _read_segmentation)
register_format("coco", "detection", _coco, _read_detection)
register_format("voc", "detection", _voc_folder, _read_detection)
register_format("luna16", "detection", _luna16_folder, _read_detection)
register_format("yolo", "detection", _yolo_folder, _read_detection)
# images with masks by name (images/ + masks/, x.png + x_mask.png): before class folders, which images/ and masks/
# would otherwise be
register_format("mask_pairs", "segmentation", _mask_pairs, _read_segmentation)
# before labels.csv: a CSV of boxes read as path,label would lose its boxes without a word
register_format("box_csv", "detection", _box_csv, _read_detection)
register_format("csv", "classification", lambda p: _file_or_child(p, "labels.csv"), _read_classification)
register_format("medmnist", "classification", _medmnist, _read_medmnist)
# a CSV of any name with image and label columns: after the formats of plugins, which may read their own CSVs,
# and before class folders (Kaggle's train.csv lies beside a single train_images/ folder)
register_format("label_table", "classification", _label_table, _read_classification, fallback=True)
register_format("imagefolder", "classification", _class_folders, _read_classification, fallback=True)
