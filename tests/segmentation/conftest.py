"""Tiny segmentation data sets (16^3 NIfTI, 32x32 PNG) written to tmp_path in nnU-Net raw layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0)) -> Path:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: array.ndim])
    image.SetOrigin(origin[: array.ndim])
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), True)
    return path


def nnunet_folder(root: Path, cases: int = 3, shape=(16, 16, 16), labels=None, ending=".nii.gz") -> Path:
    """An nnU-Net v2 raw folder whose cases hold a cube of label 1 and a smaller cube of label 2."""
    labels = labels or {"background": 0, "a": 1, "b": 2}
    rng = np.random.default_rng(0)
    for k in range(cases):
        label = np.zeros(shape, np.uint8)
        label[tuple(slice(2, 8) for _ in shape)] = 1
        label[tuple(slice(10, 13) for _ in shape)] = 2
        image = (rng.normal(0, 0.1, shape) + label).astype(np.float32)
        if ending == ".png":
            image = np.clip(image * 80 + 40, 0, 255).astype(np.uint8)
        write_volume(root / "imagesTr" / f"case_{k}_0000{ending}", image)
        write_volume(root / "labelsTr" / f"case_{k}{ending}", label)
    meta = {"channel_names": {"0": "MRI"}, "labels": labels, "numTraining": cases, "file_ending": ending}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


@pytest.fixture
def make_folder():
    """The nnunet_folder factory, for tests that need other sizes or endings."""
    return nnunet_folder


@pytest.fixture
def volume_writer():
    return write_volume


@pytest.fixture
def tiny3d(tmp_path: Path) -> Path:
    return nnunet_folder(tmp_path / "tiny3d")


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the preprocessed cache of every test inside its tmp_path."""
    import medsight.data.volume_cache as volume_cache

    monkeypatch.setattr(volume_cache, "default_cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache"
