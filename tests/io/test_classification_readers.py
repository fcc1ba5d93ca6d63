"""Classification readers: MedMNIST .npz, image folders and labels.csv, and their one-line errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.cli import main
from medsight.errors import MedsightError
from medsight.io.classification import read_medmnist
from medsight.io.imagefolder import read_classification


def write_npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def medmnist_arrays(n=(20, 6, 8), shape=(28, 28), labels_shape=1, rng=None):
    rng = rng or np.random.default_rng(0)
    arrays = {}
    for split, count in zip(("train", "val", "test"), n):
        arrays[f"{split}_images"] = rng.integers(0, 255, (count, *shape), dtype=np.uint8)
        labels = rng.integers(0, 2, (count, labels_shape))
        arrays[f"{split}_labels"] = labels if labels_shape > 1 else labels.reshape(count, 1)
    return arrays


def check_fails(capsys, path: Path, *fragments: str) -> str:
    """`medsight check path` exits 2 with one line naming the file and the problem."""
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_medmnist_2d_splits_and_labels(tmp_path):
    data = read_medmnist(write_npz(tmp_path / "breastmnist.npz", **medmnist_arrays()))
    assert data.spatial_dims == 2 and data.images.shape == (34, 1, 28, 28)
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [20, 6, 8]
    assert data.classes == ["malignant", "normal, benign"]


def test_medmnist_rgb_3d_and_multilabel(tmp_path):
    rgb = read_medmnist(write_npz(tmp_path / "rgb.npz", **medmnist_arrays(shape=(28, 28, 3))))
    assert rgb.images.shape[1:] == (3, 28, 28) and rgb.channels == ["R", "G", "B"]
    vol = read_medmnist(write_npz(tmp_path / "vol.npz", **medmnist_arrays(shape=(28, 28, 28))))
    assert vol.spatial_dims == 3 and vol.images.shape[1:] == (1, 28, 28, 28)
    multi = read_medmnist(write_npz(tmp_path / "multi.npz", **medmnist_arrays(labels_shape=4)))
    assert multi.multilabel and multi.labels.shape == (34, 4) and len(multi.classes) == 4


def test_medmnist_without_val_gets_a_seeded_stratified_split(tmp_path):
    arrays = medmnist_arrays(n=(100, 0, 10))
    del arrays["val_images"], arrays["val_labels"]
    first = read_medmnist(write_npz(tmp_path / "a.npz", **arrays))
    second = read_medmnist(write_npz(tmp_path / "b.npz", **arrays))
    assert np.array_equal(first.splits["val"], second.splits["val"])
    assert len(first.splits["val"]) == 20 and not set(first.splits["val"]) & set(first.splits["train"])
    labels = first.labels
    assert abs(labels[first.splits["val"]].mean() - labels[first.splits["train"]].mean()) < 0.15


def test_corrupt_truncated_and_inconsistent_npz(tmp_path, capsys):
    good = write_npz(tmp_path / "good.npz", **medmnist_arrays())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    check_fails(capsys, truncated, "truncated.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip at all")
    check_fails(capsys, garbage, "garbage.npz", "not a readable .npz")
    arrays = medmnist_arrays()
    del arrays["test_labels"]
    check_fails(capsys, write_npz(tmp_path / "missing.npz", **arrays), "missing.npz", "test_labels")
    arrays = medmnist_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-3]
    check_fails(capsys, write_npz(tmp_path / "lengths.npz", **arrays), "lengths.npz", "20 images", "17 labels")


def test_npz_member_that_is_corrupt(tmp_path, capsys):
    good = write_npz(tmp_path / "good.npz", **medmnist_arrays())
    broken = tmp_path / "member.npz"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(broken, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            target.writestr(item, data[:40] if item.filename == "train_images.npy" else data)
    check_fails(capsys, broken, "member.npz")


def save_png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


def make_folder(root: Path, splits=("train", "test"), per_class=6, dtype=np.uint8) -> Path:
    rng = np.random.default_rng(1)
    high = 255 if dtype == np.uint8 else 60000
    for split in splits:
        for name in ("benign", "malignant"):
            for i in range(per_class):
                save_png(root / split / name / f"{i}.png", rng.integers(0, high, (20, 24)).astype(dtype))
    return root


def test_image_folder_with_16_bit_pngs(tmp_path):
    data = read_classification(make_folder(tmp_path / "data", dtype=np.uint16), "imagefolder")
    assert data.classes == ["benign", "malignant"]
    assert {"train", "val", "test"} <= set(data.splits)
    image = data.load_case(0)
    assert image.dtype == np.uint16 and image.shape == (1, 20, 24) and image.max() > 255
    assert len(data.splits["test"]) == 12


def test_image_folder_without_splits_is_split_for_the_user(tmp_path):
    root = tmp_path / "flat"
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        for i in range(20):
            save_png(root / name / f"{i}.png", rng.integers(0, 255, (16, 16), dtype=np.uint8))
    data = read_classification(root, "imagefolder")
    sizes = {k: len(v) for k, v in data.splits.items()}
    assert sizes == {"train": 25, "test": 8, "val": 7}  # a fifth for test, then one of five folds of the rest
    assert np.bincount(data.labels[data.splits["test"]]).tolist() == [4, 4]  # stratified by class
    everything = np.concatenate(list(data.splits.values()))
    assert len(np.unique(everything)) == 40


def test_image_folder_reads_dicom_and_nifti_cases(tmp_path):
    import nibabel as nib
    from pydicom.data import get_testdata_file

    root = tmp_path / "mixed"
    for split in ("train", "test"):
        for name in ("a", "b"):
            folder = root / split / name
            folder.mkdir(parents=True)
            (folder / "ct.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes())
            nib.save(nib.Nifti1Image(np.ones((12, 12), np.float32), np.eye(4)), folder / "slice.nii.gz")
    data = read_classification(root, "imagefolder")
    shapes = {data.load_case(i).shape for i in range(len(data))}
    assert shapes == {(1, 128, 128), (1, 12, 12)}


def test_empty_class_folder_and_unreadable_image(tmp_path, capsys):
    root = make_folder(tmp_path / "data")
    (root / "train" / "empty").mkdir()
    check_fails(capsys, root, "train/empty", "empty class folder")
    (root / "train" / "empty").rmdir()
    (root / "train" / "benign" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    check_fails(capsys, root, "benign/0.png", "not a readable PNG")


def test_a_class_only_in_test_is_refused(tmp_path, capsys):
    root = make_folder(tmp_path / "data")
    save_png(root / "test" / "other" / "0.png", np.zeros((20, 24), np.uint8))
    check_fails(capsys, root, "other/0.png", "'other'", "no training case")


def write_csv(root: Path, lines: list[str]) -> Path:
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_labels_csv(tmp_path):
    root = make_folder(tmp_path / "data", splits=("train",))
    lines = ["path,label,split"]
    lines += [f"train/benign/{i}.png,benign,{'train' if i < 4 else 'test'}" for i in range(6)]
    lines += [f"train/malignant/{i}.png,malignant,{'train' if i < 4 else 'test'}" for i in range(6)]
    data = read_classification(write_csv(root, lines), "csv")
    assert data.classes == ["benign", "malignant"]
    assert len(data.splits["test"]) == 4 and len(data.splits["train"]) + len(data.splits["val"]) == 8
    assert data.load_case(int(data.splits["test"][0])).shape == (1, 20, 24)


@pytest.mark.parametrize("lines,fragments", [
    (["path,label", "train/benign/0.png,benign", "train/benign/missing.png,benign"], ["line 3", "missing.png", "does not exist"]),
    (["path,label,split", "train/benign/0.png,benign,train", "train/benign/1.png,cancer,test"], ["1.png", "'cancer'"]),
    (["name,value", "train/benign/0.png,benign"], ["labels.csv", "header"]),
    (["path,label", "train/benign/0.png,"], ["line 2", "empty label"]),
    (["path,label,split", "train/benign/0.png,benign,holdout"], ["line 2", "unknown split"]),
    ([], ["labels.csv", "empty"]),
])
def test_bad_labels_csv(tmp_path, capsys, lines, fragments):
    root = write_csv(make_folder(tmp_path / "data", splits=("train",)), lines)
    check_fails(capsys, root / "labels.csv", *fragments)


def test_not_a_run_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert "empty" in err and "not a run folder" in err and "\n" not in err
