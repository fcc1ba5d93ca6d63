"""Detection data sets: COCO (2D), Pascal VOC (2D) and nnDetection raw (3D), with their boxes checked.

Boxes are held as corner boxes in array-axis order and continuous voxel coordinates (voxel i covers
[i, i + 1)): 2D (row0, col0, row1, col1), 3D (z0, y0, x0, z1, y1, x1), as MONAI's detection code expects.
COCO's [x, y, w, h] and VOC's 1-based inclusive corners are converted on reading (and back on writing).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsight.data.dataset import TaskDataset
from medsight.data.splits import assign_splits, rarest_present
from medsight.errors import MedsightError
from medsight.io.images import picture_shape, read_image, strip_suffix
from medsight.jsonio import load_json


@dataclass
class DetectionDataset(TaskDataset):
    """Images with boxes and 0-based class labels per case."""

    sources: list[list[Path]] = field(default_factory=list)  # the channel files of each case
    boxes: list[np.ndarray] = field(default_factory=list)  # (N, 2*dims) per case
    labels: list[np.ndarray] = field(default_factory=list)  # (N,) per case
    shapes: list[tuple[int, ...]] = field(default_factory=list)  # spatial shape per case (array order)
    # 3D in world units (empty where the format has no geometry): header geometry per case, reference
    # diameters (mm) per box, and hard-negative centres (continuous array-order voxels) for patch sampling
    geometries: list[Any] = field(default_factory=list)
    diameters: list[np.ndarray] = field(default_factory=list)
    hard_negatives: list[np.ndarray] = field(default_factory=list)
    annotations_without_scan: int = 0  # LUNA16: rows of annotations.csv for scans not in the folder
    # per case, the kind of each box (metrics.detection SCORED, DIFFICULT, CROWD); empty: all scored
    ignore: list[np.ndarray] = field(default_factory=list)

    def load_case(self, index: int) -> np.ndarray:
        """(C, *spatial) float32 image of a case (channels stacked from their files)."""
        return load_channels(self.sources[index])

    def validate(self) -> None:
        """Read every image once (what `medsight check` does): a broken file, or a .mhd whose .raw is gone,
        is found now rather than when training or evaluation first reaches it."""
        for files in self.sources:
            for file in files:
                read_image(file)

    def load_geometry(self, index: int):
        """The first channel's geometry (spacing, origin, direction) for world coordinates and overlays."""
        if self.geometries:
            return self.geometries[index]
        return read_image(self.sources[index][0])

    def box_kinds(self, index: int) -> np.ndarray:
        """The kind of each box of a case: 0 scored, 1 VOC difficult, 2 COCO crowd (both ignored when scoring)."""
        return np.asarray(self.ignore[index], int) if self.ignore else np.zeros(len(self.labels[index]), int)

    def training_boxes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and labels to train on: ignored ones left out, as torchvision's and detectron2's COCO loaders
        drop crowd boxes (a box over many objects, or one the annotators could not call, is no target)."""
        kept = self.box_kinds(index) == 0
        return np.asarray(self.boxes[index])[kept], np.asarray(self.labels[index])[kept]

    def box_counts(self, indices: np.ndarray) -> list[int]:
        found = np.concatenate([self.labels[i] for i in indices]) if len(indices) else np.zeros(0, int)
        return [int(v) for v in np.bincount(found.astype(int), minlength=len(self.classes))]

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["boxes"] = {split: dict(zip(self.classes, self.box_counts(idx))) for split, idx in self.splits.items()}
        shapes = np.array(self.shapes)
        out["median_shape"] = [float(v) for v in np.median(shapes, axis=0)] if len(shapes) else []
        if self.geometries:
            out["median_spacing_mm"] = [float(v) for v in np.median([g.array_spacing for g in self.geometries], axis=0)]
            sizes = np.concatenate(self.diameters) if self.diameters else np.zeros(0)
            if len(sizes):
                out["diameter_mm"] = {"min": float(sizes.min()), "median": float(np.median(sizes)), "max": float(sizes.max())}
        if self.annotations_without_scan:
            out["annotations_without_scan"] = self.annotations_without_scan
        ignored = sum(int((np.asarray(k) > 0).sum()) for k in self.ignore)
        if ignored:  # VOC difficult / COCO crowd: neither trained on nor scored
            out["ignored_boxes"] = ignored
        return out


def load_channels(files: list[Path]) -> np.ndarray:
    arrays = [np.asarray(read_image(f).array, dtype=np.float32) for f in files]
    return np.concatenate(arrays, axis=0) if len(arrays) > 1 else arrays[0]


def check_boxes(path: Path, boxes: np.ndarray, shape: tuple[int, ...], what: str,
                as_written: list[str] | None = None) -> None:
    """Raise naming the first box outside the image or with non-positive size (shown as the file wrote it)."""
    dims = len(shape)
    for row, box in enumerate(boxes):
        shown = as_written[row] if as_written else fmt_box(box)
        size = box[dims:] - box[:dims]
        if not np.all(np.isfinite(box)) or np.any(size <= 0):
            raise MedsightError(path, f"{what} box {row + 1} ({shown}) has non-positive size")
        if np.any(box[:dims] < 0) or np.any(box[dims:] > np.asarray(shape)):
            extent = " x ".join(str(int(s)) for s in (reversed(shape) if dims == 2 else shape))
            raise MedsightError(path, f"{what} box {row + 1} ({shown}) lies outside the {extent} image")


def fmt_box(box: np.ndarray) -> str:
    return ", ".join(f"{v:g}" for v in box)


def finish_splits(dataset: DetectionDataset, fold: int) -> DetectionDataset:
    """The data set's splits by the shared protocol, stratified by the rarest class in each image."""
    assign_splits(dataset, lambda: rarest_present(dataset.labels, len(dataset.classes)), fold)
    return dataset


def given_splits(n: int, given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The splits a data set names, with "train" holding every case it leaves out."""
    splits = {k: np.asarray(v, dtype=int) for k, v in given.items() if len(v)}
    if "train" not in splits:
        assigned = np.concatenate(list(splits.values())) if splits else np.zeros(0, int)
        splits["train"] = np.setdiff1d(np.arange(n), assigned)
    return splits


# COCO ------------------------------------------------------------------------------------------------
def read_coco(path: Path, fold: int = 0) -> DetectionDataset:
    """COCO annotations (images, annotations, categories) in the layouts of medsight.io.coco_layout."""
    from medsight.io.coco_layout import load_coco

    source = load_coco(path)
    json_path, coco = source.where, source.coco
    if not isinstance(coco, dict) or not all(isinstance(coco.get(k), list) for k in ("images", "annotations", "categories")):
        raise MedsightError(json_path, "needs the COCO lists 'images', 'annotations' and 'categories'")
    try:
        categories = sorted(coco["categories"], key=lambda c: c["id"])
        category_index = {c["id"]: k for k, c in enumerate(categories)}
        classes = [str(c["name"]) for c in categories]
    except (KeyError, TypeError):
        raise MedsightError(json_path, "every category needs an 'id' and a 'name'") from None
    # a repeated id or name would merge two classes or make two classes of one, silently
    for kind, values in (("id", [c["id"] for c in categories]), ("name", classes)):
        repeated = next((v for k, v in enumerate(values) if v in values[:k]), None)
        if repeated is not None:
            raise MedsightError(json_path, f"'categories' has the {kind} {repeated!r} twice")
    images, by_id = [], {}
    for entry, bases in zip(coco["images"], source.bases):
        try:
            image_id, name = entry["id"], entry["file_name"]
        except (KeyError, TypeError):
            raise MedsightError(json_path, f"image entry {entry!r:.80} needs id and file_name") from None
        if image_id in by_id:  # its annotations would all go to the last image of that id
            raise MedsightError(json_path, f"'images' lists image id {image_id} twice")
        file = next((b / name for b in bases if (b / name).is_file()), None)
        if file is None:
            raise MedsightError(json_path, f"image {image_id} refers to {name}, which does not exist in {bases[0]}")
        by_id[image_id] = len(images)
        images.append({"file": file, "shape": _coco_shape(json_path, entry, file), "split": entry.get("split"),
                       "id": image_id})
    boxes: list[list[list[float]]] = [[] for _ in images]
    labels: list[list[int]] = [[] for _ in images]
    crowds: list[list[int]] = [[] for _ in images]  # iscrowd: 2 (CROWD), ignored when scored, as COCOeval does
    for number, ann in enumerate(coco["annotations"], 1):
        try:
            image_id, category = ann["image_id"], ann["category_id"]
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            raise MedsightError(json_path, f"annotation {number} needs image_id, category_id and a 4-number bbox") from None
        if image_id not in by_id:
            raise MedsightError(json_path, f"annotation {ann.get('id', number)} refers to image {image_id}, which 'images' does not list")
        if category not in category_index:
            raise MedsightError(json_path, f"annotation {ann.get('id', number)} has category_id {category}, which 'categories' does not define")
        row = by_id[image_id]
        boxes[row].append([y, x, y + h, x + w])
        labels[row].append(category_index[category])
        crowds[row].append(2 * int(bool(ann.get("iscrowd", 0))))
    box_arrays = [np.asarray(b, dtype=np.float64).reshape(-1, 4) for b in boxes]
    for image, case_boxes in zip(images, box_arrays):
        written = [f"bbox [{b[1]:g}, {b[0]:g}, {b[3] - b[1]:g}, {b[2] - b[0]:g}]" for b in case_boxes]
        check_boxes(json_path, case_boxes, image["shape"], f"image {image['id']} ({image['file'].name})", written)
    given: dict[str, list[int]] = {}
    for row, image in enumerate(images):
        if image["split"]:
            given.setdefault(str(image["split"]), []).append(row)
    return finish_splits(DetectionDataset(
        path=path, format="coco", task="detection", spatial_dims=2,
        splits=given_splits(len(images), {k: np.array(v) for k, v in given.items()}),
        case_ids=[str(Path(i["file"]).stem) for i in images], channels=["image"], classes=classes,
        sources=[[i["file"]] for i in images], boxes=box_arrays,
        labels=[np.asarray(v, dtype=np.int64) for v in labels], shapes=[i["shape"] for i in images],
        ignore=[np.asarray(v, dtype=np.int64) for v in crowds],
        category_ids=[c["id"] for c in categories], image_ids=source.image_ids,
    ), fold)


def _coco_shape(json_path: Path, entry: dict, file: Path) -> tuple[int, int]:
    """(height, width) of an image entry, checked against the file's header where it can be read."""
    found = picture_shape(file)
    try:
        listed = (int(entry["height"]), int(entry["width"]))
    except (KeyError, TypeError, ValueError):
        if found is None:
            raise MedsightError(json_path, f"image {entry['id']} ({entry['file_name']}) needs a width and a height") from None
        return found  # tools that omit them leave the header as the only size
    if found is not None and found != listed:  # boxes would be checked and scaled against the wrong size
        raise MedsightError(json_path, f"image {entry['id']} says width {listed[1]}, height {listed[0]}, but "
                                       f"{file.name} is {found[1]} x {found[0]}")
    return listed


# Pascal VOC --------------------------------------------------------------------------------------------
def _text(xml_path: Path, node: ET.Element, tag: str) -> str:
    found = node.find(tag)
    if found is None or found.text is None or not found.text.strip():
        raise MedsightError(xml_path, f"is missing the field <{tag}>")
    return found.text.strip()


def _number(xml_path: Path, node: ET.Element, tag: str) -> float:
    text = _text(xml_path, node, tag)
    try:
        return float(text)
    except ValueError:
        raise MedsightError(xml_path, f"<{tag}> is {text!r}, not a number") from None


def read_voc_annotation(xml_path: Path) -> dict[str, Any]:
    """One VOC XML -> file name, (height, width), class names and boxes (continuous array-order corners)."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise MedsightError(xml_path, f"is not valid XML ({exc})") from None
    filename = _text(xml_path, root, "filename")
    size = root.find("size")
    if size is None:
        raise MedsightError(xml_path, "is missing the field <size>")
    shape = (int(_number(xml_path, size, "height")), int(_number(xml_path, size, "width")))
    names, boxes, written, kinds = [], [], [], []
    for obj in root.findall("object"):
        names.append(_text(xml_path, obj, "name"))
        bndbox = obj.find("bndbox")
        if bndbox is None:
            raise MedsightError(xml_path, f"object {len(names)} ({names[-1]}) is missing the field <bndbox>")
        x0, y0, x1, y1 = (_number(xml_path, bndbox, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append([y0 - 1, x0 - 1, y1, x1])  # 1-based inclusive pixel corners -> continuous
        written.append(f"xmin {x0:g}, ymin {y0:g}, xmax {x1:g}, ymax {y1:g}")
        kinds.append(_difficult(xml_path, obj, len(names)))
    return {"filename": filename, "shape": shape, "names": names, "written": written,
            "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4), "kinds": np.asarray(kinds, dtype=np.int64)}


def _difficult(xml_path: Path, obj: ET.Element, number: int) -> int:
    """1 (DIFFICULT: ignored when scored, as the VOC devkit does) for <difficult>1</difficult>, else 0."""
    found = obj.find("difficult")
    text = (found.text or "").strip() if found is not None else ""
    if text not in ("", "0", "1"):
        raise MedsightError(xml_path, f"object {number} has <difficult> {text!r}; expected 0 or 1")
    return int(text == "1")


VOC_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def _voc_folders(path: Path) -> tuple[Path, Path]:
    """(annotations, images): VOC's Annotations/ and JPEGImages/, or one folder holding both, as labelImg saves."""
    if (path / "Annotations").is_dir():
        return path / "Annotations", path / "JPEGImages"
    return path, path


def _image_beside(xml_path: Path, folder: Path) -> Path | None:
    """The image of the same stem as an annotation in `folder` (never the .xml itself)."""
    return next((f for f in sorted(folder.glob(xml_path.stem + ".*")) if f.suffix.lower() in VOC_IMAGE_SUFFIXES), None)


def is_flat_voc(path: Path) -> bool:
    """A folder of images with a same-stem Pascal VOC .xml (root <annotation>) beside them (labelImg's output)."""
    for xml_path in sorted(path.glob("*.xml")):
        if _image_beside(xml_path, path) is not None:
            try:
                return next(ET.iterparse(xml_path, events=("start",)))[1].tag == "annotation"
            except (ET.ParseError, StopIteration, OSError):
                continue
    return False


def _voc_shape(xml_path: Path, written: tuple[int, int], image: Path) -> tuple[int, int]:
    """The XML's (height, width), checked against the image's header; a 0 size (some tools write it) is the header's."""
    found = picture_shape(image)
    if found is None:
        return written
    if 0 in written:
        return found
    if found != written:  # boxes would be checked against a size the image does not have
        raise MedsightError(xml_path, f"<size> says width {written[1]}, height {written[0]}, but {image.name} is "
                                      f"{found[1]} x {found[0]}")
    return written


def read_voc(path: Path, fold: int = 0) -> DetectionDataset:
    """Annotations/*.xml + JPEGImages/ (+ ImageSets/Main/{train,val,test}.txt), or images with a same-stem
    .xml beside each in one folder (labelImg), where an image without its .xml has no boxes (as for YOLO)."""
    xml_dir, image_dir = _voc_folders(path)
    xml_files = sorted(xml_dir.glob("*.xml"))
    if not xml_files:
        raise MedsightError(xml_dir, "holds no .xml annotation files")
    records = []
    for xml_path in xml_files:
        record = read_voc_annotation(xml_path)
        image = image_dir / record["filename"]
        if not image.is_file():
            image = _image_beside(xml_path, image_dir)
            if image is None:
                shown = "JPEGImages/" if image_dir != xml_dir else str(image_dir)
                raise MedsightError(xml_path, f"refers to {record['filename']}, which is not in {shown}")
        record["shape"] = _voc_shape(xml_path, record["shape"], image)
        check_boxes(xml_path, record["boxes"], record["shape"], "object", record["written"])
        records.append({**record, "file": image, "id": xml_path.stem})
    if image_dir == xml_dir:
        records += _unannotated(image_dir, records)
    classes = sorted({n for r in records for n in r["names"]})
    class_index = {c: k for k, c in enumerate(classes)}
    ids = [r["id"] for r in records]
    row_of = {case: k for k, case in enumerate(ids)}
    given = {}
    for split in ("train", "val", "test"):
        listing = path / "ImageSets" / "Main" / f"{split}.txt"
        if listing.is_file():
            names = [line.split()[0] for line in listing.read_text(encoding="utf-8").splitlines() if line.strip()]
            unknown = [n for n in names if n not in row_of]
            if unknown:
                raise MedsightError(listing, f"lists {unknown[0]}, which has no annotation in Annotations/")
            given[split] = np.array(sorted({row_of[n] for n in names}), dtype=int)
            # a case in two listings would be trained on and scored, or tested twice: refuse the leak
            for other in given:
                shared = sorted(set(given[other]) & set(given[split])) if other != split else []
                if shared:
                    raise MedsightError(listing, f"lists {ids[shared[0]]}, which {other}.txt lists too")
    return finish_splits(DetectionDataset(
        path=path, format="voc", task="detection", spatial_dims=2, splits=given_splits(len(records), given),
        case_ids=ids, channels=["image"], classes=classes, sources=[[r["file"]] for r in records],
        boxes=[r["boxes"] for r in records],
        labels=[np.asarray([class_index[n] for n in r["names"]], dtype=np.int64) for r in records],
        shapes=[r["shape"] for r in records], ignore=[r["kinds"] for r in records],
    ), fold)


def _unannotated(folder: Path, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat layout: the images no .xml names, each a case without boxes (labelImg saves no file for those)."""
    used = {r["file"].resolve() for r in records}
    ids = {r["id"] for r in records}
    out = []
    for image in sorted(f for f in folder.iterdir() if f.suffix.lower() in VOC_IMAGE_SUFFIXES):
        if image.resolve() in used:
            continue
        if image.stem in ids:  # a.png beside a.jpg + a.xml: which one the boxes belong to is a guess
            raise MedsightError(image, f"has no .xml of its own, and {image.stem}.xml is another image's")
        ids.add(image.stem)
        shape = picture_shape(image) or tuple(read_image(image).array.shape[1:])
        out.append({"filename": image.name, "shape": shape, "names": [], "written": [], "file": image,
                    "id": image.stem, "boxes": np.zeros((0, 4)), "kinds": np.zeros(0, np.int64)})
    return out


# nnDetection raw ---------------------------------------------------------------------------------------
def boxes_from_instances(mask: np.ndarray) -> dict[int, np.ndarray]:
    """Instance id -> its bounding box (continuous array-order corners) in an instance mask."""
    from scipy import ndimage

    ids = np.unique(mask)
    ids = ids[ids > 0].astype(int)
    out = {}
    objects = ndimage.find_objects(mask.astype(np.int64))
    for instance in ids:
        slices = objects[instance - 1]
        out[int(instance)] = np.array([s.start for s in slices] + [s.stop for s in slices], dtype=np.float64)
    return out


def _case_files(images_dir: Path, channels: int) -> dict[str, list[Path]]:
    cases: dict[str, list[Path]] = {}
    for file in sorted(images_dir.iterdir()):
        stem = strip_suffix(file)
        if file.name.startswith(".") or "_" not in stem:
            continue
        case, channel = stem.rsplit("_", 1)
        if channel.isdigit():
            cases.setdefault(case, []).append(file)
    for case, files in cases.items():
        if len(files) != channels:
            raise MedsightError(images_dir, f"case {case} has {len(files)} channel file(s) but dataset.json lists {channels}")
    return cases


def read_nndetection(path: Path, fold: int = 0) -> DetectionDataset:
    """dataset.json + imagesTr/<case>_0000.nii.gz + labelsTr/<case>.nii.gz instance masks + labelsTr/<case>.json."""
    meta = load_json(path / "dataset.json")
    labels_map = meta.get("labels")
    if not isinstance(labels_map, dict) or not labels_map:
        raise MedsightError(path / "dataset.json", "needs 'labels', a mapping of class id to name (e.g. {\"0\": \"nodule\"})")
    try:
        class_ids = sorted(int(k) for k in labels_map)
    except ValueError:
        raise MedsightError(path / "dataset.json", "'labels' keys must be class ids (0, 1, ...)") from None
    classes = [str(labels_map[str(k)]) for k in class_ids]
    class_index = {k: i for i, k in enumerate(class_ids)}
    modality = meta.get("modality", meta.get("channel_names", {"0": "image"}))
    channels = [str(modality[k]) for k in sorted(modality, key=int)] if isinstance(modality, dict) else ["image"]
    from medsight.io.geometry import Geometry

    sources, boxes, labels, shapes, case_ids, given, geometries = [], [], [], [], [], {}, []
    for images_name, labels_name, split in (("imagesTr", "labelsTr", "train"), ("imagesTs", "labelsTs", "test")):
        images_dir, labels_dir = path / images_name, path / labels_name
        if not images_dir.is_dir() or not labels_dir.is_dir():
            continue
        for case, files in _case_files(images_dir, len(channels)).items():
            mask_file = next((f for f in sorted(labels_dir.glob(case + ".*")) if not f.name.endswith(".json")), None)
            json_file = labels_dir / f"{case}.json"
            if mask_file is None:
                raise MedsightError(labels_dir, f"has no instance mask for case {case}")
            if not json_file.is_file():
                raise MedsightError(labels_dir, f"has no {case}.json mapping the instances of {mask_file.name} to classes")
            instances = load_json(json_file).get("instances", {})
            mask = np.asarray(read_image(mask_file).array[0])
            if not np.allclose(mask, np.round(mask)) or mask.min() < 0:
                raise MedsightError(mask_file, "is not an instance mask (non-negative integer ids)")
            found = boxes_from_instances(np.round(mask).astype(np.int64))
            first = read_image(files[0])
            image_shape = first.array.shape[1:]
            if tuple(image_shape) != tuple(mask.shape):
                raise MedsightError(mask_file, f"has shape {tuple(mask.shape)} but its image has {tuple(image_shape)}")
            unlisted = sorted(set(found) - {int(k) for k in instances})
            if unlisted:
                raise MedsightError(mask_file, f"holds instance id(s) {unlisted} that {json_file.name} does not list")
            case_boxes, case_labels = [], []
            for instance, box in sorted(found.items()):
                cls = instances[str(instance)] if str(instance) in instances else instances[instance]
                if int(cls) not in class_index:
                    raise MedsightError(json_file, f"maps instance {instance} to class {cls}, which dataset.json 'labels' does not define")
                case_boxes.append(box)
                case_labels.append(class_index[int(cls)])
            given.setdefault(split, []).append(len(case_ids))
            case_ids.append(case)
            sources.append(files)
            boxes.append(np.asarray(case_boxes, dtype=np.float64).reshape(-1, 2 * mask.ndim))
            labels.append(np.asarray(case_labels, dtype=np.int64))
            shapes.append(tuple(int(s) for s in mask.shape))
            if mask.ndim == 3:  # 3D detection plans in millimetres from the scans' geometry
                geometries.append(Geometry(tuple(int(s) for s in reversed(mask.shape)), first.spacing, first.origin,
                                           first.direction))
    if not case_ids:
        raise MedsightError(path, "holds no cases (expected imagesTr/<case>_0000.nii.gz and labelsTr/<case>.nii.gz + .json)")
    dims = len(shapes[0])
    return finish_splits(DetectionDataset(
        path=path, format="nndetection", task="detection", spatial_dims=dims,
        splits=given_splits(len(case_ids), {k: np.array(v) for k, v in given.items()}),
        case_ids=case_ids, channels=channels, classes=classes, sources=sources, boxes=boxes, labels=labels,
        shapes=shapes, geometries=geometries if len(geometries) == len(case_ids) else [],
    ), fold)


def read_detection(path: Path, fmt: str, fold: int = 0) -> DetectionDataset:
    """Read a detection data set of a detected format."""
    from medsight.io.box_csv import read_box_csv
    from medsight.io.luna16 import read_luna16
    from medsight.io.yolo import read_yolo

    readers = {"coco": read_coco, "voc": read_voc, "nndetection": read_nndetection, "yolo": read_yolo,
               "luna16": read_luna16, "box_csv": read_box_csv}
    if fmt not in readers:
        raise MedsightError(path, f"is a {fmt} data set, not a detection one")
    return readers[fmt](Path(path), fold)
