"""labels.csv: one row per image, its path (relative to the CSV), label and optionally split and patient.

Columns are found by name in any order, under the names such files come with (COLUMNS); other columns (age,
sex, a second id) are ignored. A label of several classes joined by | makes a multi-label set
(medsight.io.imagefolder).
"""

from __future__ import annotations

import csv
from pathlib import Path

from medsight.errors import MedsightError

# split names as data sets ship them (Kaggle's Train/, valid/, validation/), compared in lower case; for
# split folders as for a split column
SPLIT_FOLDERS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
                 "dev": "val", "test": "test", "testing": "test"}
Row = tuple[Path, str, "str | None", "str | None"]  # case, label, split, patient

# Column names as labels.csv files come (compared in lower case, spaces and hyphens as underscores); any other
# column (age, sex, a second id) is ignored.
COLUMNS = {
    "path": ("path", "filename", "file_name", "file", "filepath", "file_path", "image", "image_path", "image_name",
             "image_id", "img"),
    "label": ("label", "class", "class_name", "target", "diagnosis", "category"),
    "split": ("split",),
    "patient": ("patient", "group", "patient_id", "patientid", "subject", "subject_id"),
}


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
    rows: list[Row] = []
    first_line: dict[Path, int] = {}
    for line, row in enumerate(table[1:], start=2):
        if len(row) != len(table[0]):
            raise MedsightError(csv_path, f"line {line} has {len(row)} fields, expected {len(table[0])}")
        cell = {key: row[index].strip() for key, index in column.items()}
        name, label, split = cell["path"], cell["label"], cell.get("split")
        if not label:
            raise MedsightError(csv_path, f"line {line} has an empty label")
        if split is not None:
            split = SPLIT_FOLDERS.get(split.lower())
            if split is None:
                raise MedsightError(csv_path, f"line {line} has an unknown split {cell['split']!r} (use train, val or test)")
        if "\x00" in name:
            raise MedsightError(csv_path, f"line {line} has a path with a NUL character")
        case = (csv_path.parent / name).resolve()
        if not case.exists():
            raise MedsightError(csv_path, f"line {line}: the file {name} does not exist{_where_else(csv_path, name)}")
        if case in first_line:  # a second label for one image (or the image counted twice) is a labelling error
            raise MedsightError(csv_path, f"line {line} lists {name} again (first on line {first_line[case]})")
        first_line[case] = line
        rows.append((case, label, split, cell.get("patient") or None))
    if not rows:
        raise MedsightError(csv_path, "has a header but no rows")
    return rows


def _where_else(csv_path: Path, name: str) -> str:
    """The hint for a bare file name that lies in a subfolder (a CSV beside images/): paths are relative to the CSV."""
    try:
        beside = [d.name for d in sorted(csv_path.parent.iterdir()) if d.is_dir() and (d / name).exists()]
    except OSError:  # a name too long for the file system, say: no hint
        beside = []
    if beside:
        return f" beside the CSV (paths are relative to it; it is in {beside[0]}/: write {beside[0]}/{name})"
    return " (paths are relative to the CSV)"


def _delimiter(text: str) -> str:
    """Comma, unless the header has none and a semicolon or tab instead (spreadsheets in many locales)."""
    header = text.split("\n", 1)[0]
    if "," not in header:
        for candidate in (";", "\t"):
            if candidate in header:
                return candidate
    return ","


def _columns(csv_path: Path, header: list[str]) -> dict[str, int]:
    """Which column holds the path, the label, the split and the patient; exactly one each, by name."""
    names = [cell.strip().lower().replace(" ", "_").replace("-", "_") for cell in header]
    found: dict[str, int] = {}
    for key, aliases in COLUMNS.items():
        matches = [i for i, name in enumerate(names) if name in aliases]
        if len(matches) > 1:
            raise MedsightError(csv_path, f"has {len(matches)} {key} columns ({', '.join(header[i] for i in matches)}); "
                                          f"keep one")
        if matches:
            found[key] = matches[0]
    if "path" not in found or "label" not in found:
        raise MedsightError(csv_path, f"has header {','.join(header)!r}; expected a path column ({', '.join(COLUMNS['path'][:4])}...) "
                                      f"and a label column ({', '.join(COLUMNS['label'][:3])}...), optionally split and "
                                      f"patient (or group); one column per class (multi-label) is not read")
    return found
