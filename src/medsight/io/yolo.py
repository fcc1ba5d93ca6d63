"""Darknet/YOLO detection sets: a `.txt` of boxes beside each image (or under labels/) and the class names.

Two layouts are read:
- darknet (CODRAS): ``DATA/<name>.names`` (one class name a line) and the images with ``<image>.txt``
  beside each, in DATA itself or in DATA/images/;
- Ultralytics: ``DATA/data.yaml`` (``names`` as a list or an id -> name mapping) with ``images/`` and
  ``labels/``, each optionally split into train/, val/ and test/ (the label of ``images/train/a.jpg`` is
  ``labels/train/a.txt``).
Each label line is ``class cx cy w h``: a 0-based class id and the box centre and size as fractions (0..1)
of the image width and height. An image without a label file has no boxes. Boxes are converted to
medsight's continuous array-order corners (row0, col0, row1, col1) in pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.detection import DetectionDataset, seeded_splits

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
SPLITS = ("train", "val", "test")


def is_yolo(path: Path) -> bool:
    """A data.yaml with images/, or a .names file with images that have .txt labels beside them."""
    if (path / "data.yaml").is_file() and (path / "images").is_dir():
        return True
    if not any(path.glob("*.names")):
        return False
    return any(_labelled_images(folder) for folder in (path, path / "images") if folder.is_dir())


def _labelled_images(folder: Path) -> bool:
    return any(f.suffix.lower() in PHOTO_SUFFIXES and f.with_suffix(".txt").is_file() for f in folder.iterdir())


def _images(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")
                  and f.suffix.lower() in PHOTO_SUFFIXES)


def read_names(path: Path) -> list[str]:
    """Class names of a darknet .names file, one a line (blank lines skipped)."""
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not names:
        raise MedsightError(path, "names no classes (expected one class name a line)")
    return names


def read_data_yaml(path: Path) -> list[str]:
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
    return [str(n) for n in names]


def read_label_file(path: Path, classes: list[str], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(boxes (N, 4) in pixels, labels (N,)) of one label file; a bad line raises naming the file and line."""
    height, width = shape
    boxes, labels = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise MedsightError(path, f"line {number} has {len(fields)} fields; expected 5 (class cx cy w h)")
        try:
            values = [float(v) for v in fields]
        except ValueError:
            raise MedsightError(path, f"line {number} has a field that is not a number: {line.strip()!r}") from None
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


def _layout(path: Path) -> tuple[list[str], list[tuple[Path, Path, str | None]]]:
    """Class names and (image, label file, split or None) for every image of either layout."""
    if (path / "data.yaml").is_file():
        classes = read_data_yaml(path / "data.yaml")
        images_root, labels_root = path / "images", path / "labels"
        if not labels_root.is_dir():
            labels_root = None  # labels beside the images
        split_dirs = [s for s in SPLITS if (images_root / s).is_dir()]
        folders = [(images_root / s, s) for s in split_dirs] or [(images_root, None)]
    else:
        names_files = sorted(path.glob("*.names"))
        if len(names_files) > 1:
            raise MedsightError(path, f"holds {len(names_files)} .names files; keep one")
        classes = read_names(names_files[0])
        images_root = path / "images" if (path / "images").is_dir() else path
        labels_root, folders = None, [(images_root, None)]
    cases = [(image, _label_of(image, images_root, labels_root), split)
             for folder, split in folders for image in _images(folder)]
    if not cases:
        raise MedsightError(images_root, "holds no images (PNG, JPEG, TIFF or BMP)")
    return classes, cases


def read_yolo(path: Path, seed: int = 0) -> DetectionDataset:
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
    return DetectionDataset(
        path=path, format="yolo", task="detection", spatial_dims=2,
        splits=seeded_splits(len(cases), seed, {k: np.array(v) for k, v in given.items()}),
        case_ids=case_ids, channels=["image"], classes=classes, sources=sources, boxes=boxes, labels=labels,
        shapes=shapes,
    )
