"""nnU-Net / Medical Segmentation Decathlon raw folders: dataset.json + imagesTr/ + labelsTr/ (+ imagesTs/, labelsTs/).

Two layouts are read. nnU-Net v2: ``channel_names``, ``labels`` {name: value}, ``file_ending`` and channel files
``<case>_0000<ext>``. MSD: ``modality``, ``labels`` {value: name} and a ``training`` list of image/label pairs,
with one file per case (a 4D file holds the channels of a multi-modal task). Arrays are channels first in
SimpleITK's axis order ((C, Y, X) or (C, Z, Y, X)); spacing and the other geometry are kept for writing back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsight.data.dataset import TaskDataset
from medsight.data.splits import NUM_FOLDS, assign_splits, rarest_present
from medsight.errors import MedsightError
from medsight.io.images import is_hidden, read_image
from medsight.io.patients import dicom_patient

SEGMENTATION_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha", ".mhd", ".png", ".tif", ".tiff")
GEOMETRY_TOLERANCE = 1e-3  # relative: spacing/origin written with float32 precision differ in the last digits


def split_suffix(path: Path) -> tuple[str, str]:
    """('case_001', '.nii.gz') for case_001.nii.gz; the suffix is one of the known image endings."""
    name = path.name
    for suffix in sorted(SEGMENTATION_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    return path.stem, path.suffix


@dataclass
class SegmentationCase:
    """One case: its channel files (or one multi-channel file) and its label file (None when unlabelled)."""

    case_id: str
    images: list[Path]
    label: Path | None = None
    split: str = "train"  # "train" (imagesTr) or "test" (imagesTs)
    extra_labels: list[Path] = field(default_factory=list)  # more masks of the same image, merged (io.mask_pairs)


@dataclass
class LoadedCase:
    """A case read from disk: image (C, *spatial) float32, label (*spatial) or None, and the reference image."""

    case_id: str
    image: np.ndarray
    label: np.ndarray | None
    spacing: tuple[float, ...]  # array axis order (z, y, x), unlike SimpleITK's x-first
    reference: Any  # the io.images.Image of the first channel, for writing predictions in its geometry


@dataclass
class SegmentationDataset(TaskDataset):
    cases: list[SegmentationCase] = field(default_factory=list)
    labels: dict[int, str] = field(default_factory=dict)
    file_ending: str = ".nii.gz"
    modalities: list[str] = field(default_factory=list)
    fold: int = 0
    label_codes: dict[str, Any] = field(default_factory=dict)  # dataset.json "label_codes": coded concepts by name
    # masks paired with images by name (io.mask_pairs): raw mask value -> label value, and how it was read
    mask_coding: dict[int, int] | None = None
    mask_note: str = ""
    mask_layout: str = ""  # "side", "cases" (a folder per case, a file per channel) or "one"

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        first = self.load_case(0, with_label=False)
        out.update({"labels": {str(k): v for k, v in self.labels.items()}, "file_ending": self.file_ending,
                    "first_case": {"id": first.case_id, "shape": list(first.image.shape[1:]),
                                   "spacing": list(first.spacing)}, "fold": self.fold})
        if self.mask_note:
            out["masks"] = self.mask_note
        if getattr(self, "warnings", None):
            out["warnings"] = list(self.warnings)
        return out

    def info(self) -> dict[str, Any]:
        out = super().info()
        out.update({"labels": {str(k): v for k, v in self.labels.items()}, "modalities": self.modalities,
                    "file_ending": self.file_ending, "fold": self.fold,
                    "num_folds": self.split_info.get("num_folds", NUM_FOLDS)})
        if self.mask_layout:  # how masks paired by name were read, so that other folders are read alike
            out["mask_layout"] = self.mask_layout
            out["mask_coding"] = {str(k): v for k, v in (self.mask_coding or {}).items()}
        return out

    def load_case(self, index: int, with_label: bool = True) -> LoadedCase:
        """Read and check one case (shapes, geometry, label values, finite voxels)."""
        return load_case(self.cases[index], self, with_label)

    def validate(self) -> None:
        """Read every case once so a bad file is reported before any training; nested labels are checked
        too (a lesion outside its organ is reported by case, on stderr and in the summary)."""
        import sys

        from medsight.io.nested_labels import lesions_outside, nested_pair

        pair = nested_pair(self.labels)
        self.warnings = []
        for index in range(len(self.cases)):
            case = self.load_case(index)
            if pair is not None and case.label is not None:
                stray = lesions_outside(case.label, *pair)
                if stray:
                    organ, lesion = (self.labels[v] for v in pair)
                    line = (f"case {case.case_id}: {len(stray)} {lesion} component(s) ({sum(stray)} voxels) "
                            f"touch no {organ} voxel ({self.cases[index].label})")
                    self.warnings.append(line)
                    print(f"warning: {line}", file=sys.stderr)


def read_image_file(path: Path):
    """io.images.read_image, the shared reader (NIfTI, NRRD, MHA, PNG/TIFF, DICOM series folders)."""
    return read_image(path)


def check_finite(array: np.ndarray, path: Path) -> None:
    """A float image with NaN or infinite voxels is refused, naming the file (the network would spread them)."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        raise MedsightError(path, f"has {bad} NaN or infinite voxel(s)")


def _same_geometry(a, b) -> bool:
    def close(x, y) -> bool:
        x, y = np.asarray(x, float), np.asarray(y, float)
        return x.shape == y.shape and np.allclose(x, y, rtol=GEOMETRY_TOLERANCE, atol=GEOMETRY_TOLERANCE)

    return close(a.spacing, b.spacing) and close(a.origin, b.origin) and close(a.direction, b.direction)


def load_case(case: SegmentationCase, dataset: SegmentationDataset, with_label: bool = True) -> LoadedCase:
    """Read a case's channels and label and check them against each other and against dataset.json."""
    dims = dataset.spatial_dims
    channels: list[np.ndarray] = []
    reference = None
    for path in case.images:
        if not path.exists():
            raise MedsightError(path, f"missing channel file of case {case.case_id}")
        image = read_image_file(path)
        array = image.array
        if image.layout == "4d" and len(case.images) * array.shape[0] != len(dataset.channels):
            raise MedsightError(path, f"is a 4D file ({array.shape[0]} volumes) where a 3D image was expected "
                                      f"(dataset.json names {len(dataset.channels)} channel(s))")
        spatial = array.shape[1:]
        if len(spatial) != dims:
            raise MedsightError(path, f"is {len(spatial)}D (shape {tuple(spatial)}) but this data set is {dims}D")
        if reference is None:
            reference = image
        elif tuple(spatial) != tuple(reference.array.shape[1:]):
            raise MedsightError(path, f"has shape {tuple(spatial)} but channel 0 has {tuple(reference.array.shape[1:])}")
        check_finite(array, path)
        channels.extend(array.astype(np.float32, copy=False))
    expected = len(dataset.channels)
    if len(channels) != expected:
        stem, ending = split_suffix(case.images[0])
        hint = (" (an RGB picture: name R, G and B in channel_names)" if reference.layout == "rgb" else
                f" and there is no {stem[:-5]}_0001{ending} beside it" if len(case.images) == 1 and stem.endswith("_0000")
                else "")
        source = "the data set's first image has" if dataset.mask_coding is not None else "dataset.json names"
        raise MedsightError(case.images[0], f"has {len(channels)} channel(s) but {source} {expected}{hint}")
    stacked = np.stack(channels)
    label = None
    if with_label and case.label is not None:
        label = _read_label(case.label, reference, dataset, case.extra_labels)
    spacing = tuple(float(s) for s in reversed(reference.spacing))
    return LoadedCase(case.case_id, stacked, label, spacing, reference)


def _read_label(path: Path, reference, dataset: SegmentationDataset, extra: list[Path] | None = None) -> np.ndarray:
    if not path.exists():
        raise MedsightError(path, "label file not found")
    from medsight.io.dicom_seg import label_modality, read_seg_label
    from medsight.io.rtstruct import read_rtstruct_label

    coding = dataset.mask_coding  # masks paired by name: their values coded as labels
    if coding is not None:
        from medsight.io.mask_values import decode_mask

        image = decode_mask([path, *(extra or [])], coding)
    else:
        kind = label_modality(path)
        image = read_seg_label(path, reference, dataset.labels) if kind == "SEG" else \
            read_rtstruct_label(path, reference, dataset.labels) if kind == "RTSTRUCT" else read_image_file(path)
    array = image.array
    if array.shape[0] != 1:
        kind = "a 4D file" if image.layout == "4d" else f"a label map with {array.shape[0]} channels"
        raise MedsightError(path, f"is {kind}; expected one {dataset.spatial_dims}D label map")
    array = array[0]
    shape = tuple(reference.array.shape[1:])
    if array.shape != shape:
        raise MedsightError(path, f"has shape {array.shape} but its image has {shape}")
    if not _same_geometry(image, reference):
        raise MedsightError(path, f"has another geometry than its image (spacing {tuple(np.round(image.spacing, 4))} vs "
                                  f"{tuple(np.round(reference.spacing, 4))}, origin or direction differ)")
    check_finite(array, path)
    values = np.unique(array)
    unknown = [v for v in values.tolist() if v not in dataset.labels]
    if unknown:
        raise MedsightError(path, f"has label value(s) {unknown[:5]} that dataset.json does not name "
                                  f"(it names {sorted(dataset.labels)})")
    return array.astype(np.uint8)


# folder level ---------------------------------------------------------------------------------------------------
def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MedsightError(path, "not found: an nnU-Net raw folder needs dataset.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedsightError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise MedsightError(path, "must hold a JSON object")
    return data


def parse_labels(raw: Any, path: Path) -> dict[int, str]:
    """dataset.json labels in either layout ({name: value} nnU-Net v2, {value: name} MSD) -> {value: name}."""
    if not isinstance(raw, dict) or not raw:
        raise MedsightError(path, "has no 'labels' mapping")
    out: dict[int, str] = {}
    for key, value in raw.items():
        try:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[int(value)] = str(key)  # nnU-Net v2
            else:
                out[int(key)] = str(value)  # MSD
        except (TypeError, ValueError):
            raise MedsightError(path, f"label {key!r}: {value!r} is not a name and an integer value "
                                      "(region-based labels are not supported)") from None
    if 0 not in out:
        raise MedsightError(path, "labels must include background with value 0")
    return dict(sorted(out.items()))


def _channel_names(meta: dict[str, Any]) -> list[str]:
    raw = meta.get("channel_names", meta.get("modality", {"0": "image"}))
    return [str(raw[k]) for k in sorted(raw, key=lambda k: int(k))]


PICTURE_ENDINGS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _channel_stem(path: Path, ending: str) -> str | None:
    """'<case>_0000' for a channel file with the data set's ending or a channel folder (a DICOM series)."""
    stem, suffix = (path.name, ending) if path.is_dir() else split_suffix(path)
    return stem if suffix == ending and stem[-5:-4] == "_" and stem[-4:].isdigit() else None


def _channel_path(folder: Path, stem: str, ending: str) -> Path:
    """The channel file, or the DICOM series folder of that name when there is no file."""
    file, series = folder / f"{stem}{ending}", folder / stem
    return series if not file.exists() and series.is_dir() else file


def _nnunet_cases(root: Path, images_dir: str, labels_dir: str, ending: str, num_channels: int,
                  split: str) -> list[SegmentationCase]:
    folder = root / images_dir
    if not folder.is_dir():
        return []
    entries = [p for p in sorted(folder.iterdir()) if not is_hidden(p.name)]  # macOS '._x' copies, .DS_Store
    for path in entries:  # a case named without its channel number would be left out without a word
        if not path.is_dir() and split_suffix(path)[1] == ending and _channel_stem(path, ending) is None:
            raise MedsightError(path, f"is not named <case>_0000{ending}: nnU-Net names each channel file "
                                      "with a four-digit channel number")
    ids = sorted({stem[:-5] for stem in (_channel_stem(p, ending) for p in entries) if stem})
    label_folder = root / labels_dir
    cases = []
    for case_id in ids:
        images = [_channel_path(folder, f"{case_id}_{c:04d}", ending) for c in range(num_channels)]
        if ending.lower() in PICTURE_ENDINGS and not any(p.exists() for p in images[1:]):
            images = images[:1]  # one picture holding every channel (nnU-Net's RGB <case>_0000.png)
        label = label_folder / f"{case_id}{ending}"
        cases.append(SegmentationCase(case_id, images, label if label.exists() or split == "train" else None, split))
    if label_folder.is_dir():  # a label whose image is missing or misnamed: the case would be dropped silently
        for path in sorted(label_folder.iterdir()):
            if split_suffix(path)[1] == ending and not is_hidden(path.name) and split_suffix(path)[0] not in ids:
                raise MedsightError(path, f"has no image: expected {images_dir}/{split_suffix(path)[0]}_0000{ending}")
    return cases


def _msd_cases(root: Path, meta: dict[str, Any], json_path: Path) -> list[SegmentationCase]:
    cases = []
    for entry in meta.get("training", []):
        if not isinstance(entry, dict) or "image" not in entry or "label" not in entry:
            raise MedsightError(json_path, f"training entry {entry!r} needs 'image' and 'label'")
        image = (root / entry["image"]).resolve()
        case_id = split_suffix(image)[0]
        per_channel = [image.parent / f"{case_id}_{c:04d}{split_suffix(image)[1]}" for c in range(8)]
        # an nnU-Net-converted MSD folder lists case.nii.gz but stores case_0000.nii.gz
        images = [image] if image.exists() or not per_channel[0].exists() else [p for p in per_channel if p.exists()]
        cases.append(SegmentationCase(case_id, images, (root / entry["label"]).resolve(), "train"))
    test_labels = root / "labelsTs"
    for entry in meta.get("test", []):
        image = (root / (entry if isinstance(entry, str) else entry.get("image", ""))).resolve()
        case_id = split_suffix(image)[0]
        label = test_labels / image.name
        cases.append(SegmentationCase(case_id, [image], label if label.exists() else None, "test"))
    return cases


def _detect_dims(meta: dict[str, Any], first: Path) -> int:
    declared = str(meta.get("tensorImageSize", "")).upper()
    if declared in ("2D", "3D"):
        return int(declared[0])
    if split_suffix(first)[1] in (".png", ".tif", ".tiff"):
        return 2
    if not first.exists():
        raise MedsightError(first, "missing channel file")
    image = read_image_file(first)
    return 2 if image.array.ndim == 3 else 3


def label_strata(cases: list[SegmentationCase], labels: dict[int, str]) -> list[str]:
    """The stratum of each case for the folds: the rarest foreground class its label map contains."""
    values = sorted(labels)
    present = []
    from medsight.io.dicom_seg import dicom_label_values

    for case in cases:
        found = []
        if case.label is not None and case.label.exists():  # a DICOM SEG or RTSTRUCT names its classes in its header
            found = dicom_label_values(case.label, labels)
            found = np.unique(read_image_file(case.label).array) if found is None else found
        present.append([values.index(int(v)) for v in found if int(v) in labels and int(v) != 0])
    return rarest_present(present, len(values))


def read_segmentation(root: Path, fold: int = 0) -> SegmentationDataset:
    """Read an nnU-Net v2 or MSD raw folder; cheap checks now, per-file checks when a case is loaded."""
    root = Path(root)
    json_path = root / "dataset.json"
    meta = _load_json(json_path)
    labels = parse_labels(meta.get("labels"), json_path)
    channels = _channel_names(meta)
    from medsight.io.label_codes import check_mapping

    label_codes = check_mapping(meta.get("label_codes", {}), json_path, names=list(labels.values()))
    if "training" in meta and "file_ending" not in meta:
        cases = _msd_cases(root, meta, json_path)
        ending = split_suffix(cases[0].images[0])[1] if cases else ".nii.gz"
    else:
        ending = str(meta.get("file_ending", ".nii.gz"))
        cases = (_nnunet_cases(root, "imagesTr", "labelsTr", ending, len(channels), "train")
                 + _nnunet_cases(root, "imagesTs", "labelsTs", ending, len(channels), "test"))
    train_positions = [i for i, c in enumerate(cases) if c.split == "train"]
    labels_dir = root / "labelsTr"
    if not train_positions and labels_dir.is_dir() and any(labels_dir.iterdir()):
        raise MedsightError(root / "imagesTr", f"holds no <case>_0000{ending} image ({ending} is dataset.json's "
                                               "file_ending, or the default .nii.gz)")
    if not train_positions or not labels_dir.is_dir() or not any(labels_dir.iterdir()):
        raise MedsightError(labels_dir, "is empty or missing: no labelled training cases")
    for position in train_positions:
        case = cases[position]
        if case.label is None or not case.label.exists():
            missing = case.label or labels_dir / f"{case.case_id}{ending}"
            raise MedsightError(missing, f"label file of case {case.case_id} not found")
        for path in case.images:
            if not path.exists():
                raise MedsightError(path, f"missing channel file of case {case.case_id}")
    case_ids = [c.case_id for c in cases]
    if len(set(case_ids)) != len(case_ids):
        raise MedsightError(root, "has duplicate case ids")
    dims = _detect_dims(meta, cases[train_positions[0]].images[0])
    splits = {"train": np.asarray(train_positions, dtype=int)}
    labelled_test = [i for i, c in enumerate(cases) if c.split == "test" and c.label is not None]
    if labelled_test:
        splits["test"] = np.asarray(labelled_test, dtype=int)
    unlabelled = [i for i, c in enumerate(cases) if c.split == "test" and c.label is None]
    if unlabelled:
        splits["unlabelled"] = np.asarray(unlabelled, dtype=int)
    dataset = SegmentationDataset(
        path=root, format="nnunet", task="segmentation", spatial_dims=dims, splits=splits, case_ids=case_ids,
        channels=channels, classes=[labels[k] for k in labels], cases=cases, labels=labels, file_ending=ending,
        modalities=channels, fold=fold, label_codes=label_codes, groups=[dicom_patient(c.images[0]) if c.images[0].is_dir() else None
                                                for c in cases],
    )
    assign_splits(dataset, lambda: label_strata(cases, labels), fold)
    return dataset
