"""Classification data sets: MedMNIST .npz (here), image folders and labels.csv (io/imagefolder.py)."""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medsight.errors import MedsightError
from medsight.data.dataset import TaskDataset

# Label names of the MedMNIST sets (Yang et al. 2023), keyed by the file's stem; others get "0", "1", ...
MEDMNIST_LABELS = {
    "breastmnist": ["malignant", "normal, benign"],
    "pneumoniamnist": ["normal", "pneumonia"],
    "adrenalmnist3d": ["normal", "hyperplasia"],
    "nodulemnist3d": ["benign", "malignant"],
    "vesselmnist3d": ["vessel", "aneurysm"],
    "synapsemnist3d": ["inhibitory", "excitatory"],
    "retinamnist": ["0", "1", "2", "3", "4"],
}
# MedMNIST sets whose classes are ordered grades (quadratic kappa is meaningful).
MEDMNIST_ORDINAL = {"retinamnist"}


@dataclass
class ClassificationDataset(TaskDataset):
    """Images with one label each (or K binary labels when multilabel)."""

    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    images: np.ndarray | None = None  # (N, C, *spatial) when held in memory
    sources: list[Path] | None = None  # one file (or DICOM folder) per case when read lazily
    reader: Callable[[Path], np.ndarray] | None = None  # file -> (C, *spatial) array
    multilabel: bool = False
    ordinal: bool = False

    def load_case(self, index: int) -> np.ndarray:
        """The raw image of case index as (C, *spatial), in its stored dtype."""
        if self.images is not None:
            return self.images[index]
        assert self.sources is not None and self.reader is not None
        return self.reader(self.sources[index])

    def class_counts(self, indices: np.ndarray) -> list[int]:
        labels = self.labels[indices]
        if self.multilabel:
            return [int(v) for v in labels.sum(axis=0)]
        return [int(v) for v in np.bincount(labels, minlength=len(self.classes))]

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["multilabel"] = self.multilabel
        out["class_counts"] = {split: dict(zip(self.classes, self.class_counts(idx))) for split, idx in self.splits.items()}
        if self.images is not None:
            out["shape"] = list(self.images.shape[1:])
            out["dtype"] = str(self.images.dtype)
        return out

    def info(self) -> dict[str, Any]:
        return {**super().info(), "multilabel": self.multilabel, "ordinal": self.ordinal}


def read_medmnist(path: Path) -> ClassificationDataset:
    """Read a MedMNIST .npz (train/val/test images and labels; 2D grey or RGB, or 3D)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*.npz"))
        if len(found) != 1:
            raise MedsightError(path, f"expected exactly one .npz file, found {len(found)}")
        path = found[0]
    try:
        archive = np.load(path, allow_pickle=False)
        keys = set(archive.files)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise MedsightError(path, f"is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    missing = [k for k in ("train_images", "train_labels", "test_images", "test_labels") if k not in keys]
    if missing:
        raise MedsightError(path, f"is missing the array(s) {', '.join(missing)} (MedMNIST needs <split>_images and <split>_labels)")
    split_names = [s for s in ("train", "val", "test") if f"{s}_images" in keys]
    images, labels, splits, case_ids = [], [], {}, []
    start = 0
    for split in split_names:
        if f"{split}_labels" not in keys:
            raise MedsightError(path, f"has {split}_images but no {split}_labels")
        split_images = _read_array(archive, f"{split}_images", path)
        split_labels = _read_array(archive, f"{split}_labels", path)
        if split_images.ndim not in (3, 4):
            raise MedsightError(path, f"{split}_images has shape {split_images.shape}; expected (N,H,W), (N,H,W,3) or (N,D,H,W)")
        if split_labels.ndim not in (1, 2):
            raise MedsightError(path, f"{split}_labels has shape {split_labels.shape}; expected (N,), (N,1) or (N,K)")
        if len(split_images) != len(split_labels):
            raise MedsightError(path, f"{split}_images has {len(split_images)} images but {split}_labels has {len(split_labels)} labels")
        images.append(split_images)
        labels.append(split_labels if split_labels.ndim == 2 else split_labels[:, None])
        splits[split] = np.arange(start, start + len(split_images))
        case_ids += [f"{split}_{i}" for i in range(len(split_images))]
        start += len(split_images)
    shapes = {im.shape[1:] for im in images}
    if len(shapes) != 1:
        raise MedsightError(path, f"splits have different image shapes {sorted(shapes)}")
    stacked = np.concatenate(images)
    if len(stacked) == 0 or 0 in stacked.shape:
        raise MedsightError(path, f"holds no image data (images of shape {stacked.shape})")
    rgb = stacked.ndim == 4 and stacked.shape[-1] == 3 and stacked.shape[1] != 3
    if rgb:  # (N, H, W, 3) -> (N, 3, H, W)
        stacked, spatial_dims, channels = np.moveaxis(stacked, -1, 1), 2, ["R", "G", "B"]
    else:
        stacked, spatial_dims, channels = stacked[:, None], stacked.ndim - 1, ["image"]
    label_matrix = np.concatenate(labels)
    if not np.issubdtype(label_matrix.dtype, np.number) or not np.all(np.isfinite(label_matrix)):
        raise MedsightError(path, "labels must be finite numbers")
    multilabel = label_matrix.shape[1] > 1
    stem = path.stem.split("_")[0].lower()
    if multilabel:
        if not np.isin(label_matrix, (0, 1)).all():
            raise MedsightError(path, "multi-label labels (N,K) must be 0 or 1")
        num_classes, label_array = label_matrix.shape[1], label_matrix.astype(np.float32)
    else:
        label_array = label_matrix[:, 0].astype(np.int64)
        if label_array.min() < 0:
            raise MedsightError(path, f"labels must be non-negative class indices, found {label_array.min()}")
        num_classes = int(label_array.max()) + 1
    names = MEDMNIST_LABELS.get(stem)
    if "label_names" in keys:  # optional: class names stored beside the arrays (medsight's synthetic sets)
        names = [str(v) for v in np.atleast_1d(_read_array(archive, "label_names", path))]
    classes = names if names and len(names) == num_classes else [str(i) for i in range(num_classes)]
    if "val" not in splits:
        splits = carve_validation(splits, label_array if not multilabel else None, seed=0)
    return ClassificationDataset(
        path=path, format="medmnist", task="classification", spatial_dims=spatial_dims, splits=splits,
        case_ids=case_ids, channels=channels, classes=classes, labels=label_array, images=stacked,
        multilabel=multilabel, ordinal=stem in MEDMNIST_ORDINAL,
    )


def _read_array(archive, key: str, path: Path) -> np.ndarray:
    """One array of an open .npz; a truncated or corrupt member is a one-line error naming the archive."""
    try:
        return archive[key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise MedsightError(path, f"array {key} is truncated or corrupt ({exc})") from None


def carve_validation(splits: dict[str, np.ndarray], labels: np.ndarray | None, seed: int,
                     fraction: float = 0.15, name: str = "val") -> dict[str, np.ndarray]:
    """Take a seeded, stratified split (validation by default) out of train when the data set has none."""
    rng = np.random.default_rng(seed)
    train = splits["train"]
    val_parts, train_parts = [], []
    groups = [train] if labels is None else [train[labels[train] == c] for c in np.unique(labels[train])]
    for group in groups:
        group = rng.permutation(group)
        n_val = int(round(len(group) * fraction)) if len(group) > 1 else 0
        val_parts.append(group[:n_val])
        train_parts.append(group[n_val:])
    return {**splits, "train": np.sort(np.concatenate(train_parts)), name: np.sort(np.concatenate(val_parts))}
