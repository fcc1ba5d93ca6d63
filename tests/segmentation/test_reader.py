"""nnU-Net / MSD raw folders: reading, splits, and one-line errors naming the file for each bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from medsight.errors import MedsightError
from medsight.io.segmentation import NUM_FOLDS, read_segmentation


def load_all(root: Path) -> None:
    dataset = read_segmentation(root)
    dataset.validate()


def expect_error(root: Path, bad_file: Path, words: str) -> None:
    with pytest.raises(MedsightError) as info:
        load_all(root)
    message = str(info.value)
    assert str(bad_file.name) in message and words in message
    assert "\n" not in message


def test_reads_nnunet_folder_with_geometry(tiny3d: Path):
    dataset = read_segmentation(tiny3d)
    assert dataset.spatial_dims == 3 and dataset.labels == {0: "background", 1: "a", 2: "b"}
    case = dataset.load_case(0)
    assert case.image.shape == (1, 16, 16, 16) and case.label.shape == (16, 16, 16)
    assert set(np.unique(case.label)) == {0, 1, 2}
    assert dataset.info()["fold"] == 0 and set(dataset.info()["splits"]) <= {"train", "val", "test"}


def test_folds_are_fixed_and_disjoint(tmp_path: Path, make_folder):
    root = make_folder(tmp_path / "d", cases=12)
    folds = [read_segmentation(root, fold=k) for k in range(NUM_FOLDS)]
    vals = [set(f.info()["splits"]["val"]) for f in folds]
    test = set(folds[0].info()["splits"]["test"])
    assert all(set(f.info()["splits"]["test"]) == test for f in folds) and len(test) in (2, 3)
    assert set().union(*vals) | test == {f"case_{k}" for k in range(12)} and sum(len(v) for v in vals) == 12 - len(test)
    again = read_segmentation(root, fold=2)
    assert again.info()["splits"] == folds[2].info()["splits"]
    with pytest.raises(MedsightError, match="--fold"):
        read_segmentation(root, fold=5)


def test_msd_layout_with_4d_multichannel_file(tmp_path: Path, volume_writer):
    import SimpleITK as sitk

    root = tmp_path / "msd"
    (root / "imagesTr").mkdir(parents=True)
    volumes = [sitk.GetImageFromArray(np.full((8, 8, 8), float(c), np.float32)) for c in range(2)]
    sitk.WriteImage(sitk.JoinSeries(volumes), str(root / "imagesTr" / "p1.nii.gz"))
    volume_writer(root / "labelsTr" / "p1.nii.gz", np.zeros((8, 8, 8), np.uint8))
    meta = {"modality": {"0": "T1", "1": "T2"}, "labels": {"0": "background", "1": "tumour"}, "tensorImageSize": "4D",
            "training": [{"image": "./imagesTr/p1.nii.gz", "label": "./labelsTr/p1.nii.gz"}]}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    dataset = read_segmentation(root)
    case = dataset.load_case(0)
    assert case.image.shape == (2, 8, 8, 8) and case.image[1].max() == 1.0


def test_shape_mismatch(tiny3d: Path, volume_writer):
    bad = volume_writer(tiny3d / "labelsTr" / "case_1.nii.gz", np.zeros((16, 16, 15), np.uint8))
    expect_error(tiny3d, bad, "shape")


def test_geometry_mismatch(tiny3d: Path, volume_writer):
    bad = volume_writer(tiny3d / "labelsTr" / "case_1.nii.gz", np.zeros((16, 16, 16), np.uint8), spacing=(2.0, 1.0, 1.0))
    expect_error(tiny3d, bad, "geometry")


def test_unknown_label_value(tiny3d: Path, volume_writer):
    label = np.zeros((16, 16, 16), np.uint8)
    label[0, 0, 0] = 7
    bad = volume_writer(tiny3d / "labelsTr" / "case_2.nii.gz", label)
    expect_error(tiny3d, bad, "[7]")


def test_missing_channel_file(tiny3d: Path):
    meta = json.loads((tiny3d / "dataset.json").read_text(encoding="utf-8"))
    meta["channel_names"] = {"0": "T1", "1": "T2"}
    (tiny3d / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(MedsightError) as info:
        read_segmentation(tiny3d)
    assert "case_0_0001.nii.gz" in str(info.value) and "missing channel" in str(info.value)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_nan_or_infinite_voxels(tmp_path: Path, make_folder, volume_writer, bad_value):
    # NRRD: SimpleITK's NIfTI reader turns NaN into 0, so a NaN is only visible in formats that keep it
    root = make_folder(tmp_path / "nrrd", ending=".nrrd")
    image = np.zeros((16, 16, 16), np.float32)
    image[3, 3, 3] = bad_value
    bad = volume_writer(root / "imagesTr" / "case_1_0000.nrrd", image)
    expect_error(root, bad, "NaN or infinite")


def test_4d_file_where_3d_expected(tiny3d: Path):
    import SimpleITK as sitk

    bad = tiny3d / "imagesTr" / "case_0_0000.nii.gz"
    volume = sitk.GetImageFromArray(np.zeros((16, 16, 16), np.float32))
    sitk.WriteImage(sitk.JoinSeries([volume, volume]), str(bad))
    expect_error(tiny3d, bad, "4D")


def test_empty_labels_folder(tiny3d: Path):
    for path in (tiny3d / "labelsTr").iterdir():
        path.unlink()
    with pytest.raises(MedsightError) as info:
        read_segmentation(tiny3d)
    assert "labelsTr" in str(info.value) and "empty" in str(info.value)


def test_bad_dataset_json(tiny3d: Path):
    (tiny3d / "dataset.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(MedsightError, match="dataset.json"):
        read_segmentation(tiny3d)


def test_missing_label_file(tiny3d: Path):
    (tiny3d / "labelsTr" / "case_2.nii.gz").unlink()
    with pytest.raises(MedsightError) as info:
        read_segmentation(tiny3d)
    assert "case_2.nii.gz" in str(info.value) and "not found" in str(info.value)
