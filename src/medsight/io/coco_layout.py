"""Where a COCO data set's annotation files and images are, in the layouts the tools that write COCO use.

- ``DATA/annotations.json`` with the images beside it or in ``DATA/images/``;
- ``DATA/annotations/instances_<subset>.json``: CVAT exports ``instances_default.json`` with ``images/``
  (``images/default/`` in its newer, Datumaro-based exports), the COCO 2017 release
  ``instances_train2017.json`` and ``instances_val2017.json`` with ``train2017/`` and ``val2017/``. Such a
  file's ``file_name`` is relative to the folder above ``annotations/`` (or its ``images/``), and the subset
  in the file's name gives its images' split when the folder holds several files, one of them train;
- a COCO ``.json`` passed directly, any name, read as the file beside its images (as above).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.io.labels_csv import SPLIT_FOLDERS
from medsight.jsonio import load_json

SNIFF_BYTES = 1 << 20  # a COCO file names its "images" list near the start; instances_train2017.json is 448 MB
LISTS = ("images", "annotations", "categories")


def coco_files(path: Path) -> list[Path]:
    """The COCO annotation files of a data set path: the file itself, annotations.json or instances_*.json."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    if (path / "annotations.json").is_file():
        return [path / "annotations.json"]
    return _instances(path) or _instances(path / "annotations")


def _instances(folder: Path) -> list[Path]:
    # keypoints, captions and panoptic files beside them describe the same images without boxes; a dotted
    # name (instances_default.splits_final.json, medsight's splits of that file given alone) is no subset
    return sorted(f for f in folder.glob("instances_*.json") if "." not in f.stem and f.is_file())


def looks_like_coco(file: Path) -> bool:
    """A .json whose start names an "images" list: a COCO file of any name, read without parsing it whole."""
    if file.suffix.lower() != ".json":
        return False
    if file.name == "annotations.json" or subset_of(file):  # the reader says what such a file lacks
        return True
    with open(file, "rb") as handle:
        return b'"images"' in handle.read(SNIFF_BYTES)


def subset_of(file: Path) -> str | None:
    """instances_train2017.json -> "train2017", instances_default.json -> "default"; None for other names."""
    return file.stem[len("instances_"):] if file.stem.startswith("instances_") else None


def image_folders(file: Path) -> list[Path]:
    """Where the file_name entries of an annotation file may be relative to, the likeliest first."""
    roots = [file.parent] + ([file.parent.parent] if file.parent.name.lower() == "annotations" else [])
    subset = subset_of(file)
    folders = []
    for root in roots[::-1]:  # the folder above annotations/ first: that is where CVAT and COCO put images
        folders += [root, root / "images"] + ([root / subset, root / "images" / subset] if subset else [])
    return list(dict.fromkeys(folders))


@dataclass
class CocoSource:
    """One COCO dict read from one or several files; bases and image_ids follow coco["images"]."""

    where: Path  # what messages name: the file, or the annotations folder when several were merged
    coco: dict[str, Any]
    bases: list[list[Path]] = field(default_factory=list)  # each image's candidate folders
    image_ids: list[Any] = field(default_factory=list)  # each image's id in its own file


def load_coco(path: Path) -> CocoSource:
    """The COCO annotations of a data set path, several instances_*.json merged into one dict."""
    files = coco_files(path)
    if not files:
        raise MedsightError(path, "holds no COCO annotations (annotations.json or annotations/instances_*.json)")
    parts = []
    for file in files:
        coco = load_json(file)
        if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in LISTS):
            raise MedsightError(file, "needs the COCO lists 'images', 'annotations' and 'categories'")
        parts.append(coco)
    if len(files) == 1:
        images = parts[0]["images"]
        return CocoSource(files[0], parts[0], [image_folders(files[0])] * len(images),
                          [e.get("id") if isinstance(e, dict) else None for e in images])
    return _merge(files, parts)


def _merge(files: list[Path], parts: list[dict[str, Any]]) -> CocoSource:
    """Several subsets (train2017, val2017) as one data set: one class list, each subset a split."""
    first = _category_key(files[0], parts[0])
    for file, coco in zip(files[1:], parts[1:]):
        if _category_key(file, coco) != first:  # a category id would mean one class in one file, another in the next
            raise MedsightError(file, f"has other categories than {files[0].name}; the files of one data set share them")
    splits = [SPLIT_FOLDERS.get(re.sub(r"\d+$", "", subset_of(f) or "").lower()) for f in files]
    if "train" not in splits:  # without a training subset the names are not splits (e.g. two exported tasks)
        splits = [None] * len(files)
    seen = [{e.get("id") for e in c["images"] if isinstance(e, dict)} for c in parts]
    clash = any(seen[i] & seen[j] for i in range(len(seen)) for j in range(i))
    merged: dict[str, Any] = {"images": [], "annotations": [], "categories": parts[0]["categories"]}
    bases, image_ids = [], []
    for file, coco, split in zip(files, parts, splits):
        # subsets numbered from 1 each: the images are told apart by subset, results keep each file's own id
        key = (lambda v, s=subset_of(file): f"{s}:{v}") if clash else (lambda v: v)
        for entry in coco["images"]:
            if isinstance(entry, dict):
                image_ids.append(entry.get("id"))
                entry = {**entry, "id": key(entry.get("id"))}
                if split and not entry.get("split"):
                    entry["split"] = split
            merged["images"].append(entry)
            bases.append(image_folders(file))
        merged["annotations"] += [{**a, "image_id": key(a.get("image_id"))} if isinstance(a, dict) else a
                                  for a in coco["annotations"]]
    return CocoSource(files[0].parent, merged, bases, image_ids)


def _category_key(file: Path, coco: dict[str, Any]) -> list[tuple[Any, Any]]:
    try:
        return sorted((c["id"], c["name"]) for c in coco["categories"])
    except (KeyError, TypeError):
        raise MedsightError(file, "every category needs an 'id' and a 'name'") from None
