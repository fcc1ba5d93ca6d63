"""A table of labels: one row per image, its path, label and optionally split and patient.

Columns are found by name in any order, under the names such files come with (COLUMNS: APTOS' ``id_code,
diagnosis``, EyePACS' ``image,level``, HAM10000's ``image_id,dx`` with ``lesion_id`` as the group, ChestX-ray14's
``Image Index,Finding Labels``); other columns (age, sex, a second id) are ignored. A label of several classes
joined by | makes a multi-label set (medsight.io.imagefolder). Without a label column, two or more columns of 0/1
are one-hot classes (ISIC's ground-truth CSVs): one 1 a row is a class, several a multi-label row.

A path is relative to the CSV. Where no such file exists the image is looked up below the CSV's folder by its
file name, or by its name without an ending (``id_code`` 000c1434d8d7 -> ``train_images/000c1434d8d7.png``),
as Kaggle's data sets ship them; two images that answer to one name are an error naming both.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

from medsight.errors import MedsightError
from medsight.io.images import is_hidden

# split names as data sets ship them (Kaggle's Train/, valid/, validation/), compared in lower case; for
# split folders as for a split column
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
Row = tuple[Path, str, "str | None", "str | None"]  # case, label, split, patient

# Column names as labels.csv files come (compared in lower case, spaces and hyphens as underscores); any other
# column (age, sex, a second id) is ignored.
COLUMNS = {
    "path": ("path", "filename", "file_name", "file", "filepath", "file_path", "image", "image_path", "image_name",
             "image_id", "img", "id_code", "image_index", "image_file", "imageid", "isic_id"),
    "label": ("label", "class", "class_name", "target", "diagnosis", "category", "level", "dx", "finding_labels",
              "labels", "grade"),
    "split": ("split",),
    "patient": ("patient", "group", "patient_id", "patientid", "subject", "subject_id", "lesion_id"),
}
ONE_HOT_VALUES = {"0", "1", "0.0", "1.0"}


def read_csv(csv_path: Path) -> list[Row]:
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            text = handle.read()
        table = list(csv.reader(text.splitlines(), delimiter=_delimiter(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedsightError(csv_path, f"cannot be read as CSV ({exc})") from None
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise MedsightError(csv_path, "is empty (expected a header path,label[,split])")
    column = _columns(csv_path, table[0])
    one_hot = _one_hot(csv_path, table) if "label" not in column else None
    if "label" not in column and one_hot is None:
        _columns(csv_path, table[0], need_label=True)  # says which columns were expected
    finder = ImageFinder(csv_path.parent)
    rows: list[Row] = []
    first_line: dict[Path, int] = {}
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(table[0]):
            raise MedsightError(csv_path, f"line {line} has {len(row)} fields, expected {len(table[0])}")
        cell = {key: row[index].strip() for key, index in column.items()}
        name, split = cell["path"], cell.get("split")
        label = cell["label"] if one_hot is None else _hot_label(csv_path, line, row, one_hot)
        if not label:
            raise MedsightError(csv_path, f"line {line} has an empty label")
        if split is not None:
            split = SPLIT_FOLDERS.get(split.lower())
            if split is None:
                raise MedsightError(csv_path, f"line {line} has an unknown split {cell['split']!r} (use train, val or test)")
        if "\x00" in name:
            raise MedsightError(csv_path, f"line {line} has a path with a NUL character")
        case = (csv_path.parent / name).resolve() if name else csv_path.parent
        if not name or not case.exists():
            found = finder.find(name, csv_path, line) if name else None
            if found is None:
                raise MedsightError(csv_path, f"line {line}: the file {name} does not exist (paths are relative to the "
                                              "CSV, and no image of that name lies below its folder)")
            case = found.resolve()
        if case in first_line:  # a second label for one image (or the image counted twice) is a labelling error
            raise MedsightError(csv_path, f"line {line} lists {name} again (first on line {first_line[case]})")
        first_line[case] = line
        rows.append((case, label, split, cell.get("patient") or None))
    if not rows:
        raise MedsightError(csv_path, "has a header but no rows")
    return rows


def _delimiter(text: str) -> str:
    """Comma, unless the header has none and a semicolon or tab instead (spreadsheets in many locales)."""
    header = text.split("\n", 1)[0]
    if "," not in header:
        for candidate in (";", "\t"):
            if candidate in header:
                return candidate
    return ","


def _columns(csv_path: Path, header: list[str], need_label: bool = False) -> dict[str, int]:
    """Which column holds the path, the label, the split and the patient; at most one each, by name (the
    label column may be missing where one-hot columns stand for it)."""
    names = [cell.strip().lower().replace(" ", "_").replace("-", "_") for cell in header]
    found: dict[str, int] = {}
    for key, aliases in COLUMNS.items():
        matches = [i for i, name in enumerate(names) if name in aliases]
        if len(matches) > 1:
            raise MedsightError(csv_path, f"has {len(matches)} {key} columns ({', '.join(header[i] for i in matches)}); "
                                          f"keep one")
        if matches:
            found[key] = matches[0]
    if "path" not in found or ("label" not in found and need_label):
        raise MedsightError(csv_path, f"has header {','.join(header)!r}; expected a path column ({', '.join(COLUMNS['path'][:4])}...) "
                                      f"and a label column ({', '.join(COLUMNS['label'][:3])}...) or one 0/1 column per "
                                      f"class, optionally split and patient (or group)")
    return found


def _one_hot(csv_path: Path, table: list[list[str]]) -> list[tuple[int, str]] | None:
    """The one-hot class columns (index, name) of a table without a label column: every value 0 or 1, two or
    more such columns, each row at least one 1; a column without any 1 (ISIC's UNK) is no class. None otherwise."""
    header, body = table[0], table[1:]
    named = {i for i, cell in enumerate(header)
             if cell.strip().lower().replace(" ", "_").replace("-", "_") in {a for v in COLUMNS.values() for a in v}}
    columns = [i for i in range(len(header)) if i not in named and body
               and all(len(row) == len(header) and row[i].strip() in ONE_HOT_VALUES for row in body)]
    if len(columns) < 2:
        return None
    used = [i for i in columns if any(float(row[i]) == 1 for row in body)]
    if len(used) < 2 or any(not any(float(row[i]) == 1 for i in used) for row in body):
        return None
    return [(i, header[i].strip()) for i in used]


def _hot_label(csv_path: Path, line: int, row: list[str], columns: list[tuple[int, str]]) -> str:
    return "|".join(name for i, name in columns if float(row[i]) == 1)


class ImageFinder:
    """Images below a folder by file name and by name without its ending, listed once, on the first miss."""

    def __init__(self, root: Path):
        self.root = root
        self._by_name: dict[str, list[Path]] | None = None

    def _index(self) -> dict[str, list[Path]]:
        from medsight.io.images import IMAGE_SUFFIXES

        if self._by_name is None:
            self._by_name = {}
            for folder, dirs, files in os.walk(self.root):
                dirs[:] = sorted(d for d in dirs if not is_hidden(d))
                for file in sorted(files):
                    lower = file.lower()
                    ending = next((s for s in IMAGE_SUFFIXES if lower.endswith(s)), None)
                    if ending is None or is_hidden(file):
                        continue
                    path = Path(folder) / file
                    self._by_name.setdefault(lower, []).append(path)
                    self._by_name.setdefault(lower[: -len(ending)], []).append(path)
        return self._by_name

    def find(self, name: str, csv_path: Path, line: int) -> Path | None:
        """The image a CSV names that is not at its path relative to the CSV: the path written from a folder
        further up (CheXpert's ``CheXpert-v1.0-small/train/patient1/study1/view1.jpg`` in a CSV inside that
        folder), found by its last parts; else the one image of that name, with or without its ending, below
        the root; None when there is none."""
        parts = Path(name.replace("\\", "/")).parts
        for start in range(1, len(parts) - 1):
            tail = self.root.joinpath(*parts[start:])
            if tail.is_file():
                return tail
        key = parts[-1].lower() if parts else ""
        found = self._index().get(key, [])
        if len(found) > 1:
            shown = ", ".join(str(p.relative_to(self.root)) for p in found[:2])
            raise MedsightError(csv_path, f"line {line}: {name} could be {shown}; write the path relative to the CSV")
        return found[0] if found else None


# which CSVs of a folder are label tables ------------------------------------------------------------------------
def _header(csv_path: Path) -> list[str] | None:
    try:
        with open(csv_path, encoding="utf-8-sig") as handle:
            head = handle.read(65536)
        return next((r for r in csv.reader(head.splitlines(), delimiter=_delimiter(head)) if any(c.strip() for c in r)), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def is_label_table(csv_path: Path) -> bool:
    """A CSV with a path column and a label column, or one-hot class columns (read whole to tell)."""
    header = _header(csv_path)
    if header is None:
        return False
    try:
        column = _columns(csv_path, header)
    except MedsightError:
        return False
    if "label" in column:
        return True
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
        table = [r for r in csv.reader(text.splitlines(), delimiter=_delimiter(text)) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return _one_hot(csv_path, table) is not None


def name_words(name: str) -> list[str]:
    """'imagesTr' -> ['images', 'tr']; 'ISIC_2019_Training_GroundTruth' -> ['isic', '2019', 'training', 'ground',
    'truth']: the words of a file or folder name, for telling what it holds."""
    return [w.lower() for w in re.findall(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+", name)]


def _split_in_name(csv_path: Path) -> str | None:
    """trainLabels.csv, ISIC_2019_Training_GroundTruth.csv -> train; valid.csv -> val; test.csv -> test."""
    words = name_words(csv_path.stem)
    found = {SPLIT_FOLDERS[w] for w in words if w in SPLIT_FOLDERS}
    return found.pop() if len(found) == 1 else None


def label_tables(path: Path) -> list[tuple[Path, str | None]]:
    """The label tables of a data set path, each with the split its name gives when there are several:
    the CSV itself, DATA/labels.csv, or the CSVs at the top of DATA that read as label tables (a Kaggle
    sample_submission.csv, all one class, is left out)."""
    if path.is_file():
        return [(path, None)] if path.suffix.lower() == ".csv" and is_label_table(path) else []
    if not path.is_dir():
        return []
    if (path / "labels.csv").is_file():
        return [(path / "labels.csv", None)]
    found = [f for f in sorted(path.glob("*.csv")) if not is_hidden(f.name) and "submission" not in f.name.lower()
             and is_label_table(f)]
    if len(found) <= 1:
        return [(f, None) for f in found]
    splits = [_split_in_name(f) for f in found]
    if None in splits or len(set(splits)) != len(splits) or "train" not in splits:
        raise MedsightError(path, f"holds several label tables ({', '.join(f.name for f in found)}); give the one to "
                                  f"use as the data (DATA/{found[0].name}), or name them train/val/test")
    return list(zip(found, splits))
