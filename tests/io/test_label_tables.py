"""Label tables as Kaggle and the challenges ship them: a CSV of any name beside image folders, ids without
their file ending, one-hot class columns, one CSV per split; each read right or refused in one line."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medsight.io.formats import detect_format
from medsight.io.imagefolder import read_classification
from tests.io.test_classification_layouts import save_png
from tests.io.test_classification_readers import check_fails


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_aptos_ids_without_ending_in_an_image_folder(tmp_path):
    root = tmp_path / "aptos"
    rows = ["id_code,diagnosis"]
    for k in range(10):
        save_png(root / "train_images" / f"00{k}abc.png", 20 * (k % 5))
        rows.append(f"00{k}abc,{k % 5}")
    write(root / "train.csv", "\n".join(rows) + "\n")
    write(root / "test.csv", "id_code\n" + "\n".join(f"99{k}" for k in range(3)) + "\n")  # no labels: not a table
    write(root / "sample_submission.csv", "id_code,diagnosis\n990,0\n")  # Kaggle's template, left out
    assert detect_format(root) == ("label_table", "classification")
    data = read_classification(root, "csv")
    assert data.classes == ["0", "1", "2", "3", "4"] and data.ordinal and len(data) == 10
    assert data.sources[3].name == "003abc.png" and int(data.labels[3]) == 3
    assert data.summary()["labels_from"] == [str(root / "train.csv")]


def test_eyepacs_levels_and_ham10000_lesion_groups(tmp_path):
    root = tmp_path / "eyepacs"
    write(root / "trainLabels.csv", "image,level\n" + "\n".join(f"{k}_left,{k % 2}" for k in range(6)) + "\n")
    for k in range(6):
        save_png(root / "train" / f"{k}_left.png", 100 * (k % 2))
    data = read_classification(root, "csv")
    assert data.classes == ["0", "1"] and len(data) == 6

    ham = tmp_path / "ham"
    lines = ["lesion_id,image_id,dx,dx_type,age,sex"]
    for k in range(8):
        part = "HAM10000_images_part_1" if k < 4 else "HAM10000_images_part_2"
        save_png(ham / part / f"ISIC_{k:07d}.png", 10 * k, mode="RGB")
        lines.append(f"HAM_{k // 2:07d},ISIC_{k:07d},{'nv' if k % 4 < 2 else 'mel'},histo,50.0,male")
    write(ham / "HAM10000_metadata.csv", "\n".join(lines) + "\n")
    data = read_classification(ham, "csv")
    assert data.classes == ["mel", "nv"]
    assert list(data.groups[:2]) == ["HAM_0000000", "HAM_0000000"]  # one lesion's images stay on one side


def test_isic_one_hot_columns(tmp_path):
    root = tmp_path / "isic"
    lines = ["image,MEL,NV,BCC,UNK"]
    for k in range(9):
        save_png(root / "ISIC_2019_Training_Input" / f"ISIC_{k:07d}.png", k)
        hot = ["0.0"] * 3
        hot[k % 3] = "1.0"
        lines.append(f"ISIC_{k:07d}," + ",".join(hot) + ",0.0")
    write(root / "ISIC_2019_Training_GroundTruth.csv", "\n".join(lines) + "\n")
    write(root / "ISIC_2019_Training_Metadata.csv", "image,age_approx,sex\n" + "\n".join(
        f"ISIC_{k:07d},55.0,female" for k in range(9)) + "\n")  # no labels in it: not a table
    assert detect_format(root) == ("label_table", "classification")
    data = read_classification(root, "csv")
    assert data.classes == ["BCC", "MEL", "NV"] and not data.multilabel  # UNK, never 1, is no class
    assert [data.classes[int(v)] for v in data.labels[:3]] == ["MEL", "NV", "BCC"]


def test_chestxray14_finding_labels_multilabel(tmp_path):
    root = tmp_path / "nih"
    findings = ["No Finding", "Effusion|Mass", "Mass", "Effusion", "No Finding", "Mass|Effusion"]
    lines = ["Image Index,Finding Labels,Follow-up #,Patient ID"]
    for k, finding in enumerate(findings):
        save_png(root / "images" / f"0000{k}_000.png", 30 * k)
        lines.append(f"0000{k}_000.png,{finding},0,{k // 2}")
    write(root / "Data_Entry_2017.csv", "\n".join(lines) + "\n")
    data = read_classification(root, "csv")
    assert data.multilabel and data.classes == ["Effusion", "Mass", "No Finding"]
    assert np.array_equal(data.labels[1], [1, 1, 0])


def test_one_csv_per_split_by_name(tmp_path):
    root = tmp_path / "split"
    for split, count in (("train", 6), ("valid", 4), ("test", 4)):
        for k in range(count):
            save_png(root / "images" / f"{split}{k}.png", 100 * (k % 2))
        write(root / f"{split}.csv", "filename,class\n" + "\n".join(f"{split}{k},{'ab'[k % 2]}" for k in range(count)) + "\n")
    data = read_classification(root, "csv")
    assert {k: len(v) for k, v in data.splits.items()} == {"train": 6, "val": 4, "test": 4}


def test_bad_tables_named(tmp_path, capsys):
    root = tmp_path / "twice"
    save_png(root / "a" / "x.png", 0)
    save_png(root / "b" / "x.png", 9)
    save_png(root / "b" / "y.png", 9)
    write(root / "train.csv", "image,label\nx,0\ny,1\n")
    check_fails(capsys, root, "train.csv", "line 2", "a/x.png", "b/x.png")

    root = tmp_path / "missing"
    save_png(root / "images" / "y.png", 9)
    write(root / "train.csv", "image,label\nx,0\ny,1\n")
    check_fails(capsys, root, "train.csv", "line 2", "x does not exist")

    root = tmp_path / "two"
    save_png(root / "images" / "x.png", 9)
    write(root / "first.csv", "image,label\nx,0\n")
    write(root / "second.csv", "image,label\nx,1\n")
    check_fails(capsys, root, "several label tables", "first.csv", "second.csv")


def test_paths_written_from_a_folder_further_up(tmp_path):
    """CheXpert's train.csv, inside CheXpert-v1.0-small/, names CheXpert-v1.0-small/train/patient1/study1/view1_frontal.jpg."""
    root = tmp_path / "CheXpert-v1.0-small"
    lines = ["Path,Sex,label"]
    for k in range(6):
        save_png(root / "train" / f"patient{k}" / "study1" / "view1_frontal.png", 40 * k)
        lines.append(f"CheXpert-v1.0-small/train/patient{k}/study1/view1_frontal.png,Male,{'ab'[k % 2]}")
    write(root / "train.csv", "\n".join(lines) + "\n")
    data = read_classification(root, "csv")
    assert [s.parent.parent.name for s in data.sources] == [f"patient{k}" for k in range(6)]


def test_a_column_of_measurements_is_no_class_list(tmp_path, capsys):
    root = tmp_path / "ages"
    lines = ["image,target"]
    for k in range(24):
        save_png(root / "images" / f"{k}.png", k)
        lines.append(f"{k},{0.5 + k / 7:.4f}")
    write(root / "train.csv", "\n".join(lines) + "\n")
    check_fails(capsys, root, "24 distinct numeric labels", "classifier needs classes")
