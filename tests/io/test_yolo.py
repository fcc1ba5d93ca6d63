"""Darknet/YOLO reader: both layouts, boxes in pixels, missing label files, and one line per kind of bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.api import check
from medsight.errors import MedsightError
from medsight.io.formats import detect_format
from medsight.io.yolo import read_yolo


def photo(path: Path, height: int = 20, width: int = 40) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path)


def darknet(root: Path, lines: str = "1 0.5 0.25 0.5 0.5\n") -> Path:
    """CODRAS layout: images/ with a .txt beside each image, and a .names file."""
    (root / "retinal.names").parent.mkdir(parents=True, exist_ok=True)
    (root / "retinal.names").write_text("optic_disc\nexudate\n", encoding="utf-8")
    photo(root / "images" / "a.jpg")
    (root / "images" / "a.txt").write_text(lines, encoding="utf-8")
    photo(root / "images" / "b.jpg")  # no label file: no boxes
    return root


def test_darknet_layout_is_detected_and_boxes_are_in_pixels(tmp_path):
    root = darknet(tmp_path / "d")
    assert detect_format(root) == ("yolo", "detection")
    data = read_yolo(root)
    assert data.classes == ["optic_disc", "exudate"]
    a, b = data.case_ids.index("a"), data.case_ids.index("b")
    # cx 0.5, cy 0.25, w 0.5, h 0.5 of a 40 x 20 image: cols 10..30, rows 0..10
    np.testing.assert_allclose(data.boxes[a], [[0, 10, 10, 30]])
    assert data.labels[a].tolist() == [1]
    assert data.boxes[b].shape == (0, 4) and len(data.labels[b]) == 0
    assert data.shapes[a] == (20, 40)
    assert sorted(np.concatenate(list(data.splits.values())).tolist()) == [0, 1]


def test_corners_past_the_border_are_clipped(tmp_path):
    data = read_yolo(darknet(tmp_path / "d", "0 0.95 0.5 0.2 0.4\n"))
    np.testing.assert_allclose(data.boxes[data.case_ids.index("a")], [[6, 34, 14, 40]])


def test_ultralytics_layout_with_splits(tmp_path):
    root = tmp_path / "u"
    root.mkdir()
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames:\n  0: nodule\n  1: mass\n", encoding="utf-8")
    for split in ("train", "val"):
        photo(root / "images" / split / f"{split}1.png", 10, 10)
        (root / "labels" / split).mkdir(parents=True)
        (root / "labels" / split / f"{split}1.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n", encoding="utf-8")
    assert detect_format(root) == ("yolo", "detection")
    data = read_yolo(root)
    assert data.classes == ["nodule", "mass"]
    assert [data.case_ids[i] for i in data.splits["train"]] == ["train/train1"]
    assert [data.case_ids[i] for i in data.splits["val"]] == ["val/val1"]
    np.testing.assert_allclose(data.boxes[0], [[3, 4, 7, 6], [0, 0, 2, 2]])
    assert data.labels[0].tolist() == [1, 0]


def test_ultralytics_names_as_a_list(tmp_path):
    root = tmp_path / "u"
    root.mkdir()
    (root / "data.yaml").write_text("names: [cell, debris]\nnc: 2\n", encoding="utf-8")
    photo(root / "images" / "x.png")
    assert read_yolo(root).classes == ["cell", "debris"]


@pytest.mark.parametrize("line, message", [
    ("1 0.5 0.5 0.2", "line 2 has 4 fields; expected 5"),
    ("1 0.5 0.5 0.2 0.2 0.9", "line 2 has 6 fields; expected 5"),  # a prediction's confidence is no label
    ("1 0.1 0.1 0.5 0.1 1.2 0.4", "line 2 has a value outside 0..1"),  # a polygon point
    ("1 0.5 1.5 0.2 0.2", "line 2 has a value outside 0..1"),
    ("2 0.5 0.5 0.2 0.2", "line 2 has class 2, which is not one of the 2 classes"),
    ("0.5 0.5 0.5 0.2 0.2", "line 2 has class 0.5"),
    ("1 0.5 x 0.2 0.2", "line 2 has a field that is not a number"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, line, message):
    root = darknet(tmp_path / "d", f"0 0.5 0.5 0.1 0.1\n{line}\n")
    with pytest.raises(MedsightError) as err:
        read_yolo(root)
    assert str(err.value).startswith(str(root / "images" / "a.txt")) and message in str(err.value)


def test_bad_line_is_exit_2_and_one_line(tmp_path, capsys):
    from medsight.cli import main

    root = darknet(tmp_path / "d", "0 0.5 0.5 0.1\n")
    assert main(["check", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a.txt" in err and "line 1" in err


def test_check_reports_boxes_per_class(tmp_path):
    summary = check(darknet(tmp_path / "d"))
    assert summary["format"] == "yolo"
    assert sum(sum(per_split.values()) for per_split in summary["boxes"].values()) == 1


def test_a_single_class_folder_is_refused_naming_the_layouts(tmp_path):
    photo(tmp_path / "subset0" / "a.png")
    with pytest.raises(MedsightError, match="single class.*YOLO folder.*Pascal VOC|single class.*Pascal VOC.*YOLO"):
        detect_format(tmp_path)
    # with LUNA16's annotations.csv beside it, the same folder is a LUNA16 layout
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n", encoding="utf-8")
    assert detect_format(tmp_path) == ("luna16", "detection")


def test_a_split_folder_with_one_class_is_refused(tmp_path):
    for split in ("train", "test"):
        photo(tmp_path / split / "only" / "a.png")
        photo(tmp_path / split / "only" / "b.png")
    with pytest.raises(MedsightError, match="single class"):
        check(tmp_path)


def test_labelimg_classes_txt_serves_as_the_names_file(tmp_path):
    root = darknet(tmp_path / "d")
    (root / "retinal.names").rename(root / "images" / "classes.txt")  # labelImg writes it beside the labels
    assert detect_format(root) == ("yolo", "detection")
    data = read_yolo(root)
    assert data.classes == ["optic_disc", "exudate"] and len(data.case_ids) == 2


def test_roboflow_export_with_split_folders_and_dataset_yaml(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    (root / "dataset.yaml").write_text("train: ../train/images\nval: ../valid/images\nnc: 2\nnames: ['a', 'b']\n",
                                       encoding="utf-8")
    for split in ("train", "valid"):
        photo(root / split / "images" / f"{split}1.jpg", 10, 20)
        (root / split / "labels").mkdir()
        (root / split / "labels" / f"{split}1.txt").write_text("1 0.5 0.5 0.5 0.2\n", encoding="utf-8")
    photo(root / "train" / "images" / "empty.jpg", 10, 20)  # no label file: a negative, kept
    assert detect_format(root) == ("yolo", "detection")
    data = read_yolo(root)
    assert sorted(data.case_ids[i] for i in data.splits["val"]) == ["val/valid1"]
    assert "train/empty" in data.case_ids and len(data.case_ids) == 3
    np.testing.assert_allclose(data.boxes[data.case_ids.index("val/valid1")], [[4, 5, 6, 15]])


@pytest.mark.parametrize("layout", ["darknet", "ultralytics"])
def test_a_label_file_without_its_image_is_refused(tmp_path, layout):
    if layout == "darknet":
        root = darknet(tmp_path / "d")
        (root / "train.txt").write_text("images/a.jpg\n", encoding="utf-8")  # darknet's image list is no label
        assert read_yolo(root).case_ids  # images/ holds the labels; DATA's own .txt are not looked at
        orphan = root / "images" / "gone.txt"
    else:
        root = tmp_path / "u"
        photo(root / "images" / "train" / "a.png")
        (root / "labels" / "train").mkdir(parents=True)
        (root / "data.yaml").write_text("names: [x]\n", encoding="utf-8")
        orphan = root / "labels" / "train" / "gone.txt"
    orphan.write_text("0 0.5 0.5 0.1 0.1\n", encoding="utf-8")
    with pytest.raises(MedsightError, match="has no image of its name") as err:
        read_yolo(root)
    assert str(err.value).startswith(str(orphan))


def test_a_label_file_that_is_not_text_is_one_line(tmp_path):
    root = darknet(tmp_path / "d")
    (root / "images" / "a.txt").write_bytes(b"\xff\xfe\x00\x01\x80")
    with pytest.raises(MedsightError, match="a.txt: is not a text file of label lines"):
        read_yolo(root)


def test_polygon_lines_give_their_bounding_box(tmp_path):
    """Ultralytics segmentation labels (Roboflow's YOLOv8 segmentation export): class x1 y1 x2 y2 ... ."""
    root = darknet(tmp_path / "d", "1 0.25 0.25 0.75 0.5 0.5 0.75 0.3 0.6\n")
    data = read_yolo(root)
    height, width = data.shapes[0]
    assert np.allclose(data.boxes[0], [[0.25 * height, 0.25 * width, 0.75 * height, 0.75 * width]])
    assert data.labels[0].tolist() == [1]
