"""Darknet/YOLO detection sets: a `.txt` of boxes beside each image (or under labels/) and the class names.

Two layouts are read:
- darknet (CODRAS): ``DATA/<name>.names`` (one class name a line) and the images with ``<image>.txt``
  beside each, in DATA itself or in DATA/images/;
  (labelImg writes ``classes.txt`` instead of a .names file: it is read the same way);
- Ultralytics: ``DATA/data.yaml`` (``names`` as a list or an id -> name mapping) with ``images/`` and
  ``labels/``, each optionally split into train/, val/ and test/ (the label of ``images/train/a.jpg`` is
  ``labels/train/a.txt``), or with the folders its ``train:``/``val:``/``test:`` name, as Roboflow exports
  them (``train/images``, ``valid/images``, ``test/images`` beside ``labels/``). A label file without its
  image is an error: its boxes would be lost without a word.
Each label line is ``class cx cy w h``: a 0-based class id and the box centre and size as fractions (0..1)
of the image width and height. An image without a label file has no boxes. Boxes are converted to
medsight's continuous array-order corners (row0, col0, row1, col1) in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import is_hidden
from medsight.io.detection import DetectionDataset, finish_splits, given_splits

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLITS = ("train", "val", "test")


YAML_NAMES = ("data.yaml", "data.yml", "dataset.yaml", "dataset.yml")
SPLIT_KEYS = {"train": "train", "val": "val", "valid": "val", "test": "test"}
DARKNET_LISTS = {"train.txt", "val.txt", "valid.txt", "test.txt"}  # darknet's lists of image paths, not labels


def yaml_file(path: Path) -> Path | None:
    return next((path / n for n in YAML_NAMES if (path / n).is_file()), None)


def names_file(path: Path) -> Path | None:
    """The one .names file in DATA, else labelImg's classes.txt in DATA or DATA/images/."""
    found = sorted(path.glob("*.names"))
    if len(found) > 1:
        raise MedsightError(path, f"holds {len(found)} .names files; keep one")
    return found[0] if found else next((f for f in (path / "classes.txt", path / "images" / "classes.txt")
                                        if f.is_file()), None)


def is_yolo(path: Path) -> bool:
    """A data.yaml with images/ (or Roboflow's split folders), or class names with images that have .txt labels."""
    if yaml_file(path) is not None:
        return (path / "images").is_dir() or any((path / s / "images").is_dir() for s in SPLIT_KEYS)
    if names_file(path) is None:
        return False
    return any(_labelled_images(folder) for folder in (path, path / "images") if folder.is_dir())


def _labelled_images(folder: Path) -> bool:
    return any(f.suffix.lower() in PHOTO_SUFFIXES and f.with_suffix(".txt").is_file() for f in folder.iterdir())


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and not is_hidden(f.name)
                  and f.suffix.lower() in PHOTO_SUFFIXES)


def read_names(path: Path) -> list[str]:
    """Class names of a darknet .names file, one a line (blank lines skipped)."""
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not names:
        raise MedsightError(path, "names no classes (expected one class name a line)")
    return names


def read_data_yaml(path: Path) -> tuple[list[str], dict]:
    """Class names of an Ultralytics data.yaml: ``names`` as a list, or a mapping 0..K-1 -> name."""
    import yaml

    try:
        meta = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MedsightError(path, f"is not valid YAML ({str(exc).splitlines()[0]})") from None
    names = meta.get("names") if isinstance(meta, dict) else None
    if isinstance(names, dict):
        try:
            ids = sorted(int(k) for k in names)
        except (TypeError, ValueError):
            raise MedsightError(path, "'names' keys must be class ids 0, 1, ...") from None
        if ids != list(range(len(ids))):
            raise MedsightError(path, f"'names' ids must be 0..{len(ids) - 1} without gaps, found {ids}")
        names = [names[k] if k in names else names[str(k)] for k in ids]
    if not isinstance(names, list) or not names:
        raise MedsightError(path, "needs 'names': a list of class names or a mapping of class id to name")
    if isinstance(meta.get("nc"), int) and meta["nc"] != len(names):
        raise MedsightError(path, f"says nc: {meta['nc']} but 'names' has {len(names)} entries")
    return [str(n) for n in names], meta


def read_label_file(path: Path, classes: list[str], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) in pixels, labels (N,)) of one label file; a bad line raises naming the file and line."""
    height, width = shape
    boxes, labels = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise MedsightError(path, "is not a text file of label lines (class cx cy w h)") from None
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        polygon = len(fields) >= 7 and len(fields) % 2 == 1  # Ultralytics segmentation: class x1 y1 x2 y2 ...
        if len(fields) != 5 and not polygon:
            raise MedsightError(path, f"line {number} has {len(fields)} fields; expected 5 (class cx cy w h) or a "
                                      "polygon (class x1 y1 x2 y2 x3 y3 ...)")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise MedsightError(path, f"line {number} has a field that is not a number: {line.strip()!r}") from None
        if polygon:  # the polygon's bounding box, as Ultralytics trains a detector on segmentation labels
            xs, ys = np.asarray(values[1::2]), np.asarray(values[2::2])
            if not ((0 <= xs) & (xs <= 1)).all() or not ((0 <= ys) & (ys <= 1)).all():
                raise MedsightError(path, f"line {number} has a value outside 0..1: {line.strip()!r} "
                                          "(polygon points are fractions of the image width and height)")
            values = [values[0], (xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, xs.max() - xs.min(),
                      ys.max() - ys.min()]
        cls, cx, cy, w, h = values
        if cls != int(cls) or not 0 <= cls < len(classes):
            raise MedsightError(path, f"line {number} has class {fields[0]}, which is not one of the {len(classes)} "
                                      f"classes 0..{len(classes) - 1} ({', '.join(classes)})")
        if not all(0.0 <= v <= 1.0 for v in (cx, cy, w, h)):
            raise MedsightError(path, f"line {number} has a value outside 0..1: {line.strip()!r} "
                                      "(cx cy w h are fractions of the image width and height)")
        if w <= 0 or h <= 0:
            raise MedsightError(path, f"line {number} has a box of zero width or height: {line.strip()!r}")
        # Corners beyond the border come from rounding in the tools that wrote the file: clip them.
        row0, row1 = max(cy - h / 2, 0.0) * height, min(cy + h / 2, 1.0) * height
        col0, col1 = max(cx - w / 2, 0.0) * width, min(cx + w / 2, 1.0) * width
        boxes.append([row0, col0, row1, col1])
        labels.append(int(cls))
    return np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(labels, np.int64)


def image_shape(path: Path) -> tuple[int, int]:
    """(height, width) from the file header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError) as exc:
        raise MedsightError(path, f"cannot be read as an image ({exc})") from None
    return height, width


def _label_of(image: Path, images_root: Path, labels_root: Path | None) -> Path:
    if labels_root is None:
        return image.with_suffix(".txt")
    return (labels_root / image.relative_to(images_root)).with_suffix(".txt")


def _yaml_splits(path: Path, meta: dict) -> list[tuple[Path, str]]:
    """(images folder, split) for each train:/val:/test: entry naming a folder, relative to the yaml's
    folder; Roboflow writes ``../train/images``, which Ultralytics also finds without the ``../``."""
    out = []
    for key, split in SPLIT_KEYS.items():
        value = meta.get(key)
        if not isinstance(value, str):
            continue
        folder = next((f for f in (path / value, path / value.lstrip("./")) if f.is_dir()), None)
        if folder is not None and folder.resolve() != (path / "images").resolve():
            out.append((folder, split))
    return out


def _orphans(cases: list[tuple[Path, Path, str | None]], skip: set[str]) -> None:
    """A .txt of boxes with no image of its name would be dropped without a word: refuse it."""
    expected = {label for _, label, _ in cases}
    for folder in sorted({label.parent for label in expected}):
        for label in sorted(folder.glob("*.txt")) if folder.is_dir() else []:
            if label not in expected and label.name not in skip:
                raise MedsightError(label, f"has no image of its name ({label.stem}.jpg, .png, ...); "
                                           "remove it or add the image")


def _layout(path: Path) -> tuple[list[str], list[tuple[Path, Path, str | None]]]:
    """Class names and (image, label file, split or None) for every image of either layout."""
    cases = []
    config = yaml_file(path)
    if config is not None:
        classes, meta = read_data_yaml(config)
        roboflow = [] if (path / "images").is_dir() else _yaml_splits(path, meta)
        if not roboflow and not (path / "images").is_dir():
            raise MedsightError(config, "names no train:/val:/test: folder that exists, and there is no images/")
        for images_dir, split in roboflow:  # <split>/images/a.jpg -> <split>/labels/a.txt
            labels_dir = images_dir.parent / "labels"
            labels_dir = labels_dir if labels_dir.is_dir() else None
            cases += [(i, _label_of(i, images_dir, labels_dir), split) for i in _images(images_dir)]
        images_root, labels_root = path / "images", path / "labels"
        if not roboflow:
            if not labels_root.is_dir():
                labels_root = None  # labels beside the images
            split_dirs = [s for s in SPLITS if (images_root / s).is_dir()]
            folders = [(images_root / s, s) for s in split_dirs] or [(images_root, None)]
            cases += [(i, _label_of(i, images_root, labels_root), split) for folder, split in folders
                      for i in _images(folder)]
        skip = {"classes.txt"}
    else:
        names = names_file(path)
        classes = read_names(names)
        images_root = path / "images" if (path / "images").is_dir() else path
        cases = [(i, i.with_suffix(".txt"), None) for i in _images(images_root)]
        skip = {names.name, "classes.txt"} | (DARKNET_LISTS if images_root == path else set())
    if not cases:
        raise MedsightError(images_root, "holds no images (PNG, JPEG, TIFF or BMP)")
    _orphans(cases, skip)
    return classes, cases


def read_yolo(path: Path, fold: int = 0) -> DetectionDataset:
    """Read a darknet or Ultralytics YOLO folder, checking every label line."""
    path = Path(path)
    classes, cases = _layout(path)
    sources, boxes, labels, shapes, case_ids, given = [], [], [], [], [], {}
    for row, (image, label_file, split) in enumerate(cases):
        shape = image_shape(image)
        if label_file.is_file():
            case_boxes, case_labels = read_label_file(label_file, classes, shape)
        else:
            case_boxes, case_labels = np.zeros((0, 4)), np.zeros(0, np.int64)
        sources.append([image])
        boxes.append(case_boxes)
        labels.append(case_labels)
        shapes.append(shape)
        case_ids.append(f"{split}/{image.stem}" if split else image.stem)
        if split:
            given.setdefault(split, []).append(row)
    return finish_splits(DetectionDataset(
        path=path, format="yolo", task="detection", spatial_dims=2,
        splits=given_splits(len(cases), {k: np.array(v) for k, v in given.items()}),
        case_ids=case_ids, channels=["image"], classes=classes, sources=sources, boxes=boxes, labels=labels,
        shapes=shapes,
    ), fold)
