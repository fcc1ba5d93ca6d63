"""A CSV of boxes: one row per box, ``image,x1,y1,x2,y2,label``, paths relative to the CSV.

Column names are recognised in any order under the names the common writers use (COLUMNS): keras-retinanet's
``path,x1,y1,x2,y2,class_name`` (which has no header: a first row whose fields 2-5 are numbers, or all empty,
is read in that order), the TensorFlow object-detection CSV ``filename,width,height,class,xmin,ymin,xmax,ymax``,
RSNA Pneumonia's ``patientId,x,y,width,height,Target`` (a box by its corner and size; ids without their ending,
found below the CSV as in medsight.io.labels_csv).
A row whose box fields are all empty is an image without boxes (keras-retinanet's negatives, RSNA's Target 0).
Coordinates are pixel corners, x to the right and y down, x2 and y2 the far edges (0 <= x1 < x2 <= width).
A ``split`` column (train/val/test), a ``width,height`` pair (checked against the image) and a
``classes.csv`` beside (keras-retinanet's ``name,id``: the class order) are optional. Several box CSVs in a
folder are read as splits when their names begin with one (``train_labels.csv``, ``test_labels.csv``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.detection import DetectionDataset, finish_splits, given_splits
from medsight.io.images import picture_shape, read_image
from medsight.io.labels_csv import SPLIT_FOLDERS, ImageFinder, _delimiter

COLUMNS = {
    "image": ("image", "filename", "file_name", "file", "path", "filepath", "image_path", "image_name", "img"),
    "x1": ("x1", "xmin", "x_min", "left"), "y1": ("y1", "ymin", "y_min", "top"),
    "x2": ("x2", "xmax", "x_max", "right"), "y2": ("y2", "ymax", "y_max", "bottom"),
    "label": ("label", "class", "class_name", "category", "name"),
    "width": ("width",), "height": ("height",), "split": ("split",),
}
NEEDED = ("image", "x1", "y1", "x2", "y2", "label")
CORNERS = ("x1", "y1", "x2", "y2")
HEADERLESS = {key: k for k, key in enumerate(NEEDED)}  # keras-retinanet: path,x1,y1,x2,y2,class_name


def _table(csv_path: Path) -> list[list[str]]:
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark would hide a name
        rows = list(csv.reader(text.splitlines(), delimiter=_delimiter(text)))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedsightError(csv_path, f"cannot be read as CSV ({exc})") from None
    return rows


def _number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def columns_of(first: list[str]) -> tuple[dict[str, int], bool] | None:
    """(column index per key, whether the first row is a header), or None when this is no CSV of boxes.
    A box given by its corner and size (``x,y,width,height``, RSNA's pneumonia boxes) has keys "w" and "h"
    instead of "x2" and "y2", and then width and height are no image size."""
    names = [c.strip().lower().replace(" ", "_").replace("-", "_") for c in first]
    found = {key: names.index(a) for key, aliases in COLUMNS.items() for a in aliases if a in names}
    for key, alias in (("x1", "x"), ("y1", "y"), ("label", "target")):
        if key not in found and alias in names:
            found[key] = names.index(alias)
    if "image" not in found and "patientid" in names:  # RSNA names each image by its patient
        found["image"] = names.index("patientid")
    if "x2" not in found and "y2" not in found and "width" in found and "height" in found:
        found["w"], found["h"] = found.pop("width"), found.pop("height")
        found["x2"], found["y2"] = found["w"], found["h"]  # read as sizes below
    if all(k in found for k in NEEDED):
        return found, True
    corners = [c.strip() for c in first[1:5]]
    if len(first) == 6 and (all(_number(c) for c in corners) or not any(corners + [first[5].strip()])):
        return dict(HEADERLESS), False
    return None


def is_box_csv(path: Path) -> bool:
    """A .csv file of boxes, or a folder holding box CSVs at its top."""
    return bool(box_csvs(path)) if path.is_dir() else path.suffix.lower() == ".csv" and _is_boxes(path)


def _is_boxes(csv_path: Path) -> bool:
    """Whether the first row of a CSV (a header, or keras-retinanet's first box) reads as a CSV of boxes."""
    try:
        with open(csv_path, encoding="utf-8-sig") as handle:
            head = handle.read(65536)
        first = next((r for r in csv.reader(head.splitlines(), delimiter=_delimiter(head)) if any(c.strip() for c in r)), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return first is not None and columns_of(first) is not None


def box_csvs(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.glob("*.csv")) if f.name != "classes.csv" and _is_boxes(f)]


def _split_of(csv_path: Path) -> str | None:
    """train_labels.csv -> train; valid.csv -> val (the split a TensorFlow-style CSV's name begins with)."""
    head = csv_path.stem.lower().lstrip("_").replace("-", "_").split("_")[0]
    return SPLIT_FOLDERS.get(head)


def _class_order(folder: Path) -> list[str] | None:
    """keras-retinanet's classes.csv (``name,id``) beside the CSV: the classes in id order."""
    file = folder / "classes.csv"
    if not file.is_file():
        return None
    rows = [r for r in _table(file) if any(c.strip() for c in r)]
    try:
        pairs = sorted((int(r[1]), r[0].strip()) for r in rows)
    except (IndexError, ValueError):
        raise MedsightError(file, "needs one 'name,id' row per class, the id a whole number") from None
    return [name for _, name in pairs]


def _image_shape(csv_path: Path, line: int, file: Path, cell: dict[str, str]) -> tuple[int, int]:
    found = picture_shape(file)
    if found is None:
        found = tuple(int(s) for s in read_image(file).array.shape[1:3])
    if cell.get("width") and cell.get("height"):
        try:
            listed = (int(float(cell["height"])), int(float(cell["width"])))
        except ValueError:
            raise MedsightError(csv_path, f"line {line}: width {cell['width']!r}, height {cell['height']!r} are not numbers") from None
        if listed != found:  # boxes would be checked against a size the image does not have
            raise MedsightError(csv_path, f"line {line} says width {listed[1]}, height {listed[0]}, but {file.name} is "
                                          f"{found[1]} x {found[0]}")
    return found


def read_rows(csv_path: Path, split: str | None, cases: dict[Path, dict]) -> None:
    """Add the CSV's boxes to `cases` (image file -> its record), checking every row."""
    table = _table(csv_path)
    if not table or columns_of(table[0]) is None:
        raise MedsightError(csv_path, f"needs the columns {','.join(NEEDED)} (or xmin,ymin,xmax,ymax and class)")
    column, header = columns_of(table[0])
    finder = ImageFinder(csv_path.parent)
    for line, row in enumerate(table, start=1):
        if (header and line == 1) or not any(c.strip() for c in row):
            continue
        if len(row) <= max(column.values()):
            raise MedsightError(csv_path, f"line {line} has {len(row)} fields, expected {max(column.values()) + 1}")
        cell = {key: row[index].strip() for key, index in column.items()}
        name = cell["image"]
        file = (csv_path.parent / name).resolve() if name and "\x00" not in name else None
        if file is not None and not file.is_file():  # a bare name or an id without its ending, below the CSV
            file = finder.find(name, csv_path, line)
        if file is None or not file.is_file():
            raise MedsightError(csv_path, f"line {line}: the image {name!r} does not exist (paths are relative to the "
                                          "CSV, and no image of that name lies below its folder)")
        file = file.resolve()
        row_split = SPLIT_FOLDERS.get(cell["split"].lower()) if cell.get("split") else split
        if cell.get("split") and row_split is None:
            raise MedsightError(csv_path, f"line {line} has an unknown split {cell['split']!r} (use train, val or test)")
        if file not in cases:
            cases[file] = {"name": name, "split": row_split, "shape": _image_shape(csv_path, line, file, cell),
                           "boxes": [], "labels": [], "line": line, "csv": csv_path}
        case = cases[file]
        if case["split"] != row_split:  # one image trained on and scored: refuse the leak
            raise MedsightError(csv_path, f"line {line} puts {name} in {row_split}, line {case['line']} of "
                                          f"{case['csv'].name} in {case['split']}")
        fields = [cell[k] for k in CORNERS]
        if not any(fields):
            continue  # an image without boxes (RSNA's Target 0 rows keep their label)
        if not all(fields) or not cell["label"]:
            raise MedsightError(csv_path, f"line {line} has empty box fields or label (all empty: an image without boxes)")
        try:
            x1, y1, x2, y2 = (float(v) for v in fields)
        except ValueError:
            raise MedsightError(csv_path, f"line {line} has a coordinate that is not a number ({','.join(fields)})") from None
        if "w" in column:  # corner and size
            x2, y2 = x1 + x2, y1 + y2
        if not np.all(np.isfinite([x1, y1, x2, y2])) or x2 <= x1 or y2 <= y1:
            raise MedsightError(csv_path, f"line {line}: the box ({','.join(fields)}) is empty or inverted (needs x1 < x2, y1 < y2)")
        height, width = case["shape"]
        if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
            raise MedsightError(csv_path, f"line {line}: the box ({','.join(fields)}) lies outside the {width} x {height} image {name}")
        case["boxes"].append([y1, x1, y2, x2])  # medsight's array-order corners (row0, col0, row1, col1)
        case["labels"].append(cell["label"])


def read_box_csv(path: Path, fold: int = 0) -> DetectionDataset:
    """A CSV of boxes, or a folder with one (or one per split, named after it)."""
    path = Path(path)
    files = [path] if path.is_file() else box_csvs(path)
    splits = [_split_of(f) for f in files] if len(files) > 1 else [None]
    if len(files) > 1 and None in splits:
        raise MedsightError(path, f"holds {len(files)} CSVs of boxes ({', '.join(f.name for f in files)}); keep one, "
                                  f"or name them after their split (train_labels.csv, test_labels.csv)")
    cases: dict[Path, dict] = {}
    for file, split in zip(files, splits):
        read_rows(file, split, cases)
    if not cases:
        raise MedsightError(files[0], "has a header but no rows")
    found = sorted({n for c in cases.values() for n in c["labels"]})
    classes = _class_order(files[0].parent) or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise MedsightError(files[0].parent / "classes.csv", f"does not list the class {unknown[0]!r} the boxes use")
    index = {c: k for k, c in enumerate(classes)}
    records = list(cases.items())
    given: dict[str, list[int]] = {}
    for row, (_, case) in enumerate(records):
        if case["split"]:
            given.setdefault(case["split"], []).append(row)
    return finish_splits(DetectionDataset(
        path=path, format="box_csv", task="detection", spatial_dims=2,
        splits=given_splits(len(records), {k: np.array(v) for k, v in given.items()}),
        case_ids=[Path(c["name"]).with_suffix("").as_posix() for _, c in records], channels=["image"],
        classes=classes, sources=[[f] for f, _ in records],
        boxes=[np.asarray(c["boxes"], np.float64).reshape(-1, 4) for _, c in records],
        labels=[np.asarray([index[n] for n in c["labels"]], np.int64) for _, c in records],
        shapes=[c["shape"] for _, c in records],
    ), fold)
