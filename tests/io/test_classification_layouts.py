"""Classification data as users bring it: nested class folders, split folders by other names, labels.csv
with other column names, delimiters and multi-label rows; each read right or refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.cli import main
from medsight.io.formats import detect_format
from medsight.io.imagefolder import read_classification
from tests.io.test_classification_readers import check_fails


def save_png(path: Path, value: int, mode: str = "L") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((12, 12), value, np.uint8)
    Image.fromarray(array if mode == "L" else np.stack([array] * 3, -1)).save(path)
    return path


def test_images_in_subfolders_of_a_class_folder(tmp_path):
    root = tmp_path / "data"
    for value, name in ((10, "Normal"), (200, "Pneumonia")):
        for i in range(6):
            save_png(root / name / f"patient{i % 2}" / "study" / f"{i}.PNG", value)
    data = read_classification(root, "imagefolder")
    assert data.classes == ["Normal", "Pneumonia"] and len(data) == 12
    for index in range(len(data)):  # each image keeps the class of the folder above its subfolders
        assert data.load_case(index).max() == (10, 200)[int(data.labels[index])]
    assert "Normal/patient0/study/0.PNG" in data.case_ids


@pytest.mark.parametrize("names", [("Train", "Val", "Test"), ("train", "valid", "test"), ("training", "validation", "testing")])
def test_split_folders_by_other_names(tmp_path, names):
    root = tmp_path / "data"
    for folder in names:
        for value, name in ((10, "neg"), (200, "pos")):
            for i in range(4):
                save_png(root / folder / name / f"{i}.png", value)
    assert detect_format(root) == ("imagefolder", "classification")
    data = read_classification(root, "imagefolder")
    assert data.classes == ["neg", "pos"]
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 8, "val": 8, "test": 8}
    assert data.split_info["origin"] == "data"


def test_lone_capitalised_train_folder_is_a_split(tmp_path):
    for value, name in ((10, "neg"), (200, "pos")):
        for i in range(10):
            save_png(tmp_path / "data" / "Train" / name / f"{i}.png", value)
    assert detect_format(tmp_path / "data") == ("imagefolder", "classification")


def test_a_folder_beside_the_split_folders_is_refused(tmp_path, capsys):
    root = tmp_path / "data"
    for folder in ("train", "test", "extra"):
        for value, name in ((10, "neg"), (200, "pos")):
            save_png(root / folder / name / "0.png", value)
    check_fails(capsys, root, "extra", "split folders")
    (root / "extra").rename(root / "valid")
    save_png(root / "val" / "neg" / "0.png", 10)
    check_fails(capsys, root, "val/", "valid/", "two folders")


def write_csv(root: Path, text: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "labels.csv").write_text(text, encoding="utf-8")
    return root


def test_labels_csv_with_other_column_names_and_extra_columns(tmp_path):
    root = tmp_path / "data"
    lines = ["Diagnosis,age,Image_ID,patient_id,sex"]
    for i in range(12):
        save_png(root / "images" / f"{i}.png", 10 if i % 2 else 200)
        lines.append(f"{'benign' if i % 2 else 'malignant'},{40 + i},images/{i}.png,P{i // 2},F")
    data = read_classification(write_csv(root, "\n".join(lines) + "\n"), "csv")
    assert data.classes == ["benign", "malignant"]
    assert data.groups[data.case_ids.index("images/3.png")] == "P1"
    for index in range(len(data)):
        assert data.load_case(index).max() == (10, 200)[int(data.labels[index])]


def test_labels_csv_with_semicolons_and_split_names(tmp_path):
    root = tmp_path / "data"
    lines = ["path;label;split"]
    for i in range(12):
        save_png(root / f"{i}.png", 10 * i)
        lines.append(f"{i}.png;{i % 2};{'Train' if i < 8 else 'Test'}")
    data = read_classification(write_csv(root, "\n".join(lines) + "\n"), "csv")
    assert data.classes == ["0", "1"] and len(data.splits["test"]) == 4


def test_labels_csv_multilabel_rows(tmp_path):
    root = tmp_path / "data"
    lines = ["image,label"]
    for i, labels in enumerate(["Effusion", "Mass", "Effusion|Mass", "Mass | Nodule", "Nodule"] * 3):
        save_png(root / f"{i}.png", 10 * i)
        lines.append(f"{i}.png,{labels}")
    data = read_classification(write_csv(root, "\n".join(lines) + "\n"), "csv")
    assert data.multilabel and data.classes == ["Effusion", "Mass", "Nodule"]
    assert data.labels[data.case_ids.index("3.png")].tolist() == [0.0, 1.0, 1.0]
    assert data.labels[data.case_ids.index("2.png")].tolist() == [1.0, 1.0, 0.0]


@pytest.mark.parametrize("text,fragments", [
    ("path,label\n0.png,a\n1.png,b\n0.png,b\n", ["line 4", "0.png again", "line 2"]),
    ("filename,label\n2.png,a\nimages/1.png,b\n", ["line 2", "2.png does not exist"]),  # a bare 0.png is found in images/
    ("path,label,class\nimages/0.png,a,b\n", ["2 label columns", "label, class"]),
    ("image,effusion,mass\nimages/0.png,1,0\n", ["header", "label column"]),
])
def test_bad_labels_csv(tmp_path, capsys, text, fragments):
    root = tmp_path / "data"
    save_png(root / "images" / "0.png", 10)
    save_png(root / "images" / "1.png", 20)
    save_png(root / "1.png", 20)
    if "again" in fragments[1]:
        save_png(root / "0.png", 10)
    check_fails(capsys, write_csv(root, text) / "labels.csv", *fragments)


def test_colour_set_whose_first_image_is_grey(tmp_path, capsys):
    root = tmp_path / "data"
    for value, name in ((10, "a"), (200, "b")):
        for i in range(8):
            save_png(root / name / f"{i}.png", value, "L" if (name, i) == ("a", 0) else "RGB")
    data = read_classification(root, "imagefolder")
    assert data.channels == ["R", "G", "B"]
    assert main(["check", str(root)]) == 0
    assert "mixes grey and RGB images (1 grey, 15 RGB; e.g." in capsys.readouterr().out


def test_check_warns_of_8_and_16_bit_images_in_one_set(tmp_path, capsys):
    root = tmp_path / "data"
    for value, name in ((10, "a"), (200, "b")):
        for i in range(6):
            save_png(root / name / f"{i}.png", value)
    Image.fromarray(np.full((12, 12), 40000, np.uint16)).save(root / "b" / "9.png")
    assert main(["check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "mixes 8-bit and 16-bit images" in out and "b/9.png" in out


def test_zip_from_a_mac_carries_macosx_beside_the_splits(tmp_path):
    """Kaggle's chest_xray archive: train/, val/, test/ with NORMAL/ and PNEUMONIA/, and __MACOSX/ of '._' copies."""
    root = tmp_path / "chest_xray"
    for split in ("train", "val", "test"):
        for value, name in ((10, "NORMAL"), (200, "PNEUMONIA")):
            for i in range(3):
                save_png(root / split / name / f"{i}.jpeg.png", value)
                (root / "__MACOSX" / split / name).mkdir(parents=True, exist_ok=True)
                (root / "__MACOSX" / split / name / f"._{i}.jpeg.png").write_bytes(b"\x00\x05\x16\x07")
    assert detect_format(root) == ("imagefolder", "classification")
    data = read_classification(root, "imagefolder")
    assert data.classes == ["NORMAL", "PNEUMONIA"] and len(data) == 18
