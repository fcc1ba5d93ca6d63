"""Classification data sets made of files: class folders and labels.csv.

``DATA/<split>/<class>/<image>`` with splits train, val and test, or ``DATA/<class>/<image>`` with no
splits, a class folder's images possibly in subfolders of it; ``DATA/labels.csv`` with the columns
``path,label[,split][,patient]`` in any order, by these or the usual other names (medsight.io.labels_csv), other columns
ignored (paths relative to the CSV). An image is any file medsight.io.images reads, or a folder holding one
DICOM series, whose PatientID names its patient. Missing splits are carved by medsight.data.splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsight.data.splits import assign_splits
from medsight.errors import MedsightError
from medsight.io.classification import ClassificationDataset, class_strata
from medsight.io.images import (RASTER_SUFFIXES, is_dicom_file, is_dicom_series, is_hidden, is_image_file, read_image,
                                 suffix_of)
from medsight.io.labels_csv import SPLIT_FOLDERS, Row, label_tables, read_csv
from medsight.io.patients import dicom_patient

SPLITS = ("train", "val", "test")


def read_case(path: Path) -> np.ndarray:
    return read_image(path).array


def _is_case(path: Path) -> bool:
    if is_hidden(path.name):
        return False
    return is_image_file(path) or (path.is_file() and not path.suffix and is_dicom_file(path)) or is_dicom_series(path)


def split_of_folder(folder: Path) -> str | None:
    """The split a folder name gives (train, val or test), or None for a class folder."""
    return SPLIT_FOLDERS.get(folder.name.lower())


def _class_cases(folder: Path) -> list[Path]:
    """The cases anywhere under a class folder: images are often grouped further (by patient, by source)."""
    cases = _cases_under(folder)
    if not cases:
        raise MedsightError(folder, "is an empty class folder (no image files or DICOM series in it)")
    return cases


def _cases_under(folder: Path) -> list[Path]:
    cases = []
    for entry in sorted(folder.iterdir()):
        if _is_case(entry):
            cases.append(entry)
        elif entry.is_dir() and not is_hidden(entry.name):
            cases += _cases_under(entry)
    return cases


def read_classification(path: Path, fmt: str, fold: int = 0) -> ClassificationDataset:
    """Read an image-folder or labels.csv data set."""
    path = Path(path)
    if fmt in ("csv", "label_table"):
        tables = label_tables(path) or [(path if path.is_file() else path / "labels.csv", None)]
        rows = []
        for csv_path, split in tables:  # several tables: each a split, by its name (train.csv, test.csv)
            rows += [(case, label, given or split, patient) for case, label, given, patient in read_csv(csv_path)]
        dataset = _build(path, fmt, rows, fold)
        dataset.label_files = [str(csv_path) for csv_path, _ in tables]  # what check says it read
        return dataset
    return _build(path, fmt, _read_folders(path), fold)


def _read_folders(root: Path) -> list[Row]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not is_hidden(p.name))
    split_dirs = [p for p in subdirs if split_of_folder(p)]
    rows: list[Row] = []
    if split_dirs:
        _check_split_folders(root, subdirs, split_dirs)
        for split_dir in split_dirs:
            classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not is_hidden(p.name))
            if not classes:
                raise MedsightError(split_dir, "has no class folders (expected <split>/<class>/<images>)")
            for class_dir in classes:
                rows += [(case, class_dir.name, split_of_folder(split_dir), None) for case in _class_cases(class_dir)]
    else:
        for class_dir in subdirs:
            rows += [(case, class_dir.name, None, None) for case in _class_cases(class_dir)]
    if not rows:
        raise MedsightError(root, "holds no images")
    return rows


def _check_split_folders(root: Path, subdirs: list[Path], split_dirs: list[Path]) -> None:
    """Split folders leave no room for class folders beside them, nor for two folders of one split."""
    others = [p.name for p in subdirs if p not in split_dirs]
    if others:  # read as neither a split nor a class, their images would silently drop out
        raise MedsightError(root, f"has split folders ({', '.join(p.name for p in split_dirs)}) and other folders "
                                  f"beside them ({', '.join(others)}); expected only train/, val/ and test/")
    names = {}
    for split_dir in split_dirs:
        twin = names.setdefault(split_of_folder(split_dir), split_dir.name)
        if twin != split_dir.name:
            raise MedsightError(root, f"has two folders for the {split_of_folder(split_dir)} split: {twin}/ and {split_dir.name}/")
    if "train" not in names:
        raise MedsightError(root, "has split folders but no train/ folder")


def _build(path: Path, fmt: str, rows: list[Row], fold: int = 0) -> ClassificationDataset:
    has_splits = any(split is not None for _, _, split, _ in rows)
    if has_splits and any(split is None for _, _, split, _ in rows):
        raise MedsightError(path, "gives a split for some cases but not for others")
    train_labels, labels, multilabel, ordinal = _labels(path, rows)
    split_of = np.array([split or "train" for _, _, split, _ in rows])
    splits = {name: np.flatnonzero(split_of == name) for name in SPLITS if (split_of == name).any()}
    sources = [case for case, _, _, _ in rows]
    groups = [patient or dicom_patient(case) for case, _, _, patient in rows]
    first = read_image(sources[0])
    root = path.parent if path.is_file() else path
    case_ids = [_case_id(case, root) for case in sources]
    channels = (["R", "G", "B"] if _mostly_rgb(sources, first)
                else ["image"] * (1 if first.layout == "rgb" else first.array.shape[0]))
    dataset = FileClassificationDataset(
        path=path, format=fmt, task="classification", spatial_dims=first.spatial_dims, splits=splits,
        case_ids=case_ids, channels=channels, classes=train_labels, labels=labels, sources=sources,
        reader=read_case, groups=groups, multilabel=multilabel, ordinal=ordinal,
    )
    assign_splits(dataset, class_strata(dataset), fold)
    return dataset


def _labels(path: Path, rows: list[Row]) -> tuple[list[str], np.ndarray, bool, bool]:
    """(classes, labels, multilabel, ordinal): a class per case, or several joined by | (ChestX-ray14's
    "Effusion|Mass"), which makes a multi-label set whose labels are a 0/1 row per case."""
    multilabel = any("|" in label for _, label, _, _ in rows)
    names = [[part.strip() for part in label.split("|")] if multilabel else [label] for _, label, _, _ in rows]
    train_labels = sorted({n for (_, _, split, _), parts in zip(rows, names) if split in (None, "train") for n in parts})
    if not train_labels:
        raise MedsightError(path, "has no training cases")
    measured = _measurements(train_labels)
    if measured:  # a column of measurements (age, a score): classes would be one per value
        raise MedsightError(path, f"has {len(train_labels)} distinct numeric labels such as {measured}: a classifier "
                                  "needs classes (a regression task can be added as a plugin: docs/adding-a-task.md)")
    for (case, label, _, _), parts in zip(rows, names):
        unknown = [n for n in parts if n not in train_labels]
        if unknown:
            what = f"label {unknown[0]!r}" if unknown[0] else f"an empty label in {label!r}"
            raise MedsightError(case, f"has {what}, which no training case has (known: {', '.join(train_labels)})")
    if len(train_labels) == 1:
        from medsight.io.formats import KNOWN_LAYOUTS

        raise MedsightError(path, f"has a single class ({train_labels[0]}) among its training cases; a classifier "
                                  f"needs two or more (expected {KNOWN_LAYOUTS})")
    if multilabel:
        matrix = np.zeros((len(rows), len(train_labels)), np.float32)
        for row, parts in enumerate(names):
            matrix[row, [train_labels.index(n) for n in parts]] = 1.0
        return train_labels, matrix, True, False
    from medsight.io.class_order import ordinal_class_order

    graded = ordinal_class_order(train_labels)  # grade_0..grade_4 or 0..4: ordered by number, scored by QWK
    train_labels = graded or train_labels
    index = {name: i for i, name in enumerate(train_labels)}
    labels = np.array([index[label] for _, label, _, _ in rows], dtype=np.int64)
    return train_labels, labels, False, graded is not None


def _measurements(labels: list[str]) -> str | None:
    """One of the labels when they are many numbers with fractions (20 or more, not whole), else None."""
    try:
        values = [float(v) for v in labels]
    except ValueError:
        return None
    fractional = [v for v, x in zip(labels, values) if x != round(x)]
    return fractional[0] if len(labels) >= 20 and fractional else None


# Pillow modes that medsight.io.images reads as RGB (palette and RGBA pictures are converted)
RGB_MODES = ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr", "HSV")


def _mostly_rgb(sources: list[Path], first) -> bool:
    """Whether most pictures are colour, as the plan decides the network's channels: a colour set whose first
    file happens to be grey is still recorded as R, G, B. Pictures are judged by their header (no decode)."""
    from PIL import Image as PILImage

    if suffix_of(sources[0]) not in RASTER_SUFFIXES:
        return first.layout == "rgb"
    votes = []
    for source in sources[:: max(1, len(sources) // 50)]:
        try:
            with PILImage.open(source) as picture:
                votes.append(picture.mode in RGB_MODES)
        except Exception:  # an unreadable file is reported by read_image (check reads every one)
            continue
    return sum(votes) * 2 >= len(votes) if votes else first.layout == "rgb"  # a tie: grey to RGB loses nothing


def _case_id(case: Path, root: Path) -> str:
    try:
        return str(case.relative_to(root.resolve() if case.is_absolute() else root))
    except ValueError:
        return str(case)


class FileClassificationDataset(ClassificationDataset):
    """Cases read from files on demand."""

    def validate(self) -> None:
        """Read every case once (what `medsight check` does), so a broken file is found before training."""
        dims = self.spatial_dims
        layouts: dict[str, list[Path]] = {}
        depths: dict[str, list[Path]] = {}
        for source in self.sources or []:
            image = read_image(source)
            if image.spatial_dims != dims:
                raise MedsightError(source, f"is {image.spatial_dims}D but the data set's first image is {dims}D")
            layouts.setdefault("RGB" if image.layout == "rgb" else "grey", []).append(source)
            depths.setdefault(str(image.array.dtype), []).append(source)
        self.warnings = _mix_warnings(layouts, depths)

    def summary(self) -> dict:
        out = super().summary()
        if getattr(self, "warnings", None):
            out["warnings"] = list(self.warnings)
        out["first_image_shape"] = list(read_image(self.sources[0]).shape) if self.sources else []
        if getattr(self, "label_files", None):
            out["labels_from"] = list(self.label_files)
        return out


def _mix_warnings(layouts: dict[str, list[Path]], depths: dict[str, list[Path]]) -> list[str]:
    """What `check` says of a set that mixes grey with colour pictures, or 8-bit with 16-bit ones."""
    warnings = []
    if len(layouts) > 1:
        counts = ", ".join(f"{len(v)} {k}" for k, v in layouts.items())
        rare = min(layouts.values(), key=len)[0]
        warnings.append(f"mixes grey and RGB images ({counts}; e.g. {rare}): each is converted to the channels most "
                        f"of them have (in_channels in plan.json)")
    if {"uint8", "uint16"} <= set(depths):
        warnings.append(f"mixes 8-bit and 16-bit images ({len(depths['uint8'])} and {len(depths['uint16'])}; e.g. "
                        f"{depths['uint16'][0]}): one intensity range is fitted to both, which leaves the 8-bit "
                        f"ones almost no contrast; convert them to one bit depth")
    return warnings
