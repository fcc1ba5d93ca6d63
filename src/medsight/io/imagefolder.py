"""Classification data sets made of files: class folders and labels.csv.

``DATA/<split>/<class>/<image>`` with splits train, val and test, or ``DATA/<class>/<image>`` with no
splits; ``DATA/labels.csv`` with the columns ``path,label[,split]`` (paths relative to the CSV). An image
is any file medsight.io.images reads, or a folder holding one DICOM series. A missing validation split is
carved from train, and a missing test split too, both seeded and stratified, and recorded in the run.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.classification import ClassificationDataset, carve_validation
from medsight.io.images import is_dicom_file, is_dicom_series, is_image_file, read_image

SPLITS = ("train", "val", "test")
CARVE_SEED = 0


def read_case(path: Path) -> np.ndarray:
    return read_image(path).array


def _is_case(path: Path) -> bool:
    if path.name.startswith("."):
        return False
    return is_image_file(path) or (path.is_file() and not path.suffix and is_dicom_file(path)) or is_dicom_series(path)


def _class_cases(folder: Path) -> list[Path]:
    cases = [p for p in sorted(folder.iterdir()) if _is_case(p)]
    if not cases:
        raise MedsightError(folder, "is an empty class folder (no image files or DICOM series in it)")
    return cases


def read_classification(path: Path, fmt: str) -> ClassificationDataset:
    """Read an image-folder or labels.csv data set."""
    path = Path(path)
    if fmt == "csv":
        csv_path = path if path.is_file() else path / "labels.csv"
        rows = _read_csv(csv_path)
    else:
        rows = _read_folders(path)
    return _build(path, fmt, rows)


def _read_folders(root: Path) -> list[tuple[Path, str, str | None]]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    split_dirs = [p for p in subdirs if p.name in SPLITS]
    rows: list[tuple[Path, str, str | None]] = []
    if split_dirs:
        if "train" not in {p.name for p in split_dirs}:
            raise MedsightError(root, "has split folders but no train/ folder")
        for split_dir in split_dirs:
            classes = sorted(p for p in split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
            if not classes:
                raise MedsightError(split_dir, "has no class folders (expected <split>/<class>/<images>)")
            for class_dir in classes:
                rows += [(case, class_dir.name, split_dir.name) for case in _class_cases(class_dir)]
    else:
        for class_dir in subdirs:
            rows += [(case, class_dir.name, None) for case in _class_cases(class_dir)]
    if not rows:
        raise MedsightError(root, "holds no images")
    return rows


def _read_csv(csv_path: Path) -> list[tuple[Path, str, str | None]]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedsightError(csv_path, f"cannot be read as CSV ({exc})") from None
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise MedsightError(csv_path, "is empty (expected a header path,label[,split])")
    header = [cell.strip().lower() for cell in table[0]]
    if header[:2] != ["path", "label"] or header[2:] not in ([], ["split"]):
        raise MedsightError(csv_path, f"has header {','.join(table[0])!r}; expected path,label or path,label,split")
    rows: list[tuple[Path, str, str | None]] = []
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(header):
            raise MedsightError(csv_path, f"line {line} has {len(row)} fields, expected {len(header)}")
        name, label = row[0].strip(), row[1].strip()
        split = row[2].strip() if len(row) > 2 else None
        if not label:
            raise MedsightError(csv_path, f"line {line} has an empty label")
        if split is not None and split not in SPLITS:
            raise MedsightError(csv_path, f"line {line} has an unknown split {split!r} (use train, val or test)")
        if "\x00" in name:
            raise MedsightError(csv_path, f"line {line} has a path with a NUL character")
        case = (csv_path.parent / name).resolve()
        if not case.exists():
            raise MedsightError(csv_path, f"line {line}: the file {name} does not exist")
        rows.append((case, label, split))
    if not rows:
        raise MedsightError(csv_path, "has a header but no rows")
    return rows


def _build(path: Path, fmt: str, rows: list[tuple[Path, str, str | None]]) -> ClassificationDataset:
    has_splits = any(split is not None for _, _, split in rows)
    if has_splits and any(split is None for _, _, split in rows):
        raise MedsightError(path, "gives a split for some cases but not for others")
    train_labels = sorted({label for _, label, split in rows if split in (None, "train")})
    if not train_labels:
        raise MedsightError(path, "has no training cases")
    for case, label, split in rows:
        if label not in train_labels:
            raise MedsightError(case, f"has label {label!r}, which no training case has (known: {', '.join(train_labels)})")
    if len(train_labels) == 1:
        from medsight.io.formats import KNOWN_LAYOUTS

        raise MedsightError(path, f"has a single class ({train_labels[0]}) among its training cases; a classifier "
                                  f"needs two or more (expected {KNOWN_LAYOUTS})")
    from medsight.metrics.ordinal import ordinal_class_order

    graded = ordinal_class_order(train_labels)  # grade_0..grade_4 or 0..4: ordered by number, scored by QWK
    train_labels = graded or train_labels
    index = {name: i for i, name in enumerate(train_labels)}
    labels = np.array([index[label] for _, label, _ in rows], dtype=np.int64)
    split_of = np.array([split or "train" for _, _, split in rows])
    splits = {name: np.flatnonzero(split_of == name) for name in SPLITS if (split_of == name).any()}
    if "test" not in splits:
        splits = carve_validation(splits, labels, seed=CARVE_SEED, fraction=0.2, name="test")
    if "val" not in splits:
        splits = carve_validation(splits, labels, seed=CARVE_SEED)
    sources = [case for case, _, _ in rows]
    first = read_image(sources[0])
    root = path.parent if path.is_file() else path
    case_ids = [_case_id(case, root) for case in sources]
    channels = ["R", "G", "B"] if first.layout == "rgb" else ["image"] * first.array.shape[0]
    dataset = FileClassificationDataset(
        path=path, format=fmt, task="classification", spatial_dims=first.spatial_dims, splits=splits,
        case_ids=case_ids, channels=channels, classes=train_labels, labels=labels, sources=sources,
        reader=read_case, ordinal=graded is not None,
    )
    return dataset


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
        for source in self.sources or []:
            image = read_image(source)
            if image.spatial_dims != dims:
                raise MedsightError(source, f"is {image.spatial_dims}D but the data set's first image is {dims}D")

    def summary(self) -> dict:
        out = super().summary()
        out["first_image_shape"] = list(read_image(self.sources[0]).shape) if self.sources else []
        return out
