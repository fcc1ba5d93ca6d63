"""Flat Pascal VOC folders (labelImg: image + same-stem .xml in one folder) and CSVs of boxes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.errors import MedsightError
from medsight.io.formats import detect_format, read_dataset


def picture(file: Path, width: int = 64, height: int = 48) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(file)
    return file


def voc_xml(file: Path, image: str, objects: list[tuple[str, int, int, int, int, int]]) -> None:
    body = "".join(f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                   f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>" for n, x0, y0, x1, y1, d in objects)
    file.write_text(f"<annotation><folder>d</folder><filename>{image}</filename><path>/elsewhere/{image}</path>"
                    f"<size><width>64</width><height>48</height><depth>3</depth></size>{body}</annotation>")


def flat_voc(root: Path) -> Path:
    picture(root / "a.jpg")
    picture(root / "b.png")
    picture(root / "c.png")  # labelImg saves no .xml for an image without boxes
    voc_xml(root / "a.xml", "a.jpg", [("cell", 1, 2, 10, 20, 0), ("cell", 30, 5, 40, 15, 1)])
    voc_xml(root / "b.xml", "b.png", [("blob", 5, 5, 20, 20, 0)])
    return root


def test_flat_voc_folder_is_read_as_voc(tmp_path):
    root = flat_voc(tmp_path / "d")
    assert detect_format(root) == ("voc", "detection")
    data = read_dataset(root)
    assert data.case_ids == ["a", "b", "c"] and data.classes == ["blob", "cell"]
    np.testing.assert_allclose(data.boxes[0], [[1, 0, 20, 10], [4, 29, 15, 40]])  # 1-based inclusive -> continuous
    assert len(data.boxes[2]) == 0 and data.shapes[2] == (48, 64)
    np.testing.assert_array_equal(data.box_kinds(0), [0, 1])  # <difficult>1</difficult>


def test_flat_voc_xml_without_its_image_is_one_line(tmp_path):
    root = flat_voc(tmp_path / "d")
    voc_xml(root / "z.xml", "z.jpg", [("cell", 1, 2, 10, 20, 0)])
    with pytest.raises(MedsightError) as info:
        read_dataset(root)
    assert str(info.value).startswith(str(root / "z.xml")) and "refers to z.jpg" in str(info.value)


def test_folder_with_unrelated_xml_is_not_voc(tmp_path):
    picture(tmp_path / "a.png")
    (tmp_path / "a.xml").write_text("<config><x>1</x></config>")
    with pytest.raises(MedsightError, match="not a recognised data set"):
        detect_format(tmp_path)


@pytest.mark.parametrize("header,rows", [
    ("image,x1,y1,x2,y2,label", ["images/a.png,2,3,12,20,cell", "images/a.png,30,0,64,48,blob", "images/b.png,,,,,"]),
    # the TensorFlow object-detection CSV (generate_tfrecord's), columns in its own order
    ("filename,width,height,class,xmin,ymin,xmax,ymax",
     ["images/a.png,64,48,cell,2,3,12,20", "images/a.png,64,48,blob,30,0,64,48", "images/b.png,64,48,,,,,"]),
    # keras-retinanet: no header, path,x1,y1,x2,y2,class_name
    (None, ["images/a.png,2,3,12,20,cell", "images/a.png,30,0,64,48,blob", "images/b.png,,,,,"]),
])
def test_csv_of_boxes(tmp_path, header, rows):
    picture(tmp_path / "images" / "a.png")
    picture(tmp_path / "images" / "b.png")
    csv = tmp_path / "boxes.csv"
    csv.write_text("\n".join(([header] if header else []) + rows) + "\n")
    for given in (tmp_path, csv):
        assert detect_format(given) == ("box_csv", "detection")
    data = read_dataset(tmp_path)
    assert data.case_ids == ["images/a", "images/b"] and data.classes == ["blob", "cell"]
    np.testing.assert_allclose(data.boxes[0], [[3, 2, 20, 12], [0, 30, 48, 64]])  # (row0, col0, row1, col1)
    np.testing.assert_array_equal(data.labels[0], [1, 0])
    assert len(data.boxes[1]) == 0  # empty box fields: an image without boxes


def test_csvs_named_after_splits_and_classes_csv(tmp_path):
    for name in ("a", "b", "c"):
        picture(tmp_path / f"{name}.png")
    (tmp_path / "train_labels.csv").write_text("filename,xmin,ymin,xmax,ymax,class\na.png,1,1,9,9,x\nb.png,1,1,9,9,y\n")
    (tmp_path / "test_labels.csv").write_text("filename,xmin,ymin,xmax,ymax,class\nc.png,1,1,9,9,y\n")
    (tmp_path / "classes.csv").write_text("y,0\nx,1\n")  # keras-retinanet's class order
    data = read_dataset(tmp_path)
    assert data.classes == ["y", "x"]
    assert [data.case_ids[i] for i in data.splits["test"]] == ["c"]


@pytest.mark.parametrize("row,expected", [
    ("gone.png,1,1,9,9,cell", "line 2: the image 'gone.png' does not exist"),
    ("a.png,1,one,9,9,cell", "line 2 has a coordinate that is not a number"),
    ("a.png,9,1,2,9,cell", "line 2: the box (9,1,2,9) is empty or inverted"),
    ("a.png,1,1,65,9,cell", "line 2: the box (1,1,65,9) lies outside the 64 x 48 image a.png"),
    ("a.png,1,1,,9,cell", "line 2 has empty box fields or label"),
    ("a.png,1,1,9,9,", "line 2 has empty box fields or label"),
], ids=["missing-image", "non-numeric", "inverted", "outside", "partly-empty", "no-label"])
def test_bad_csv_row_is_exit_2_and_one_line(tmp_path, capsys, row, expected):
    from medsight.cli import main

    picture(tmp_path / "a.png")
    (tmp_path / "boxes.csv").write_text(f"image,x1,y1,x2,y2,label\n{row}\n")
    assert main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "boxes.csv") in err and expected in err, err


def test_csv_width_height_must_match_the_image(tmp_path):
    picture(tmp_path / "a.png")
    (tmp_path / "boxes.csv").write_text("filename,width,height,class,xmin,ymin,xmax,ymax\na.png,640,480,c,1,1,9,9\n")
    with pytest.raises(MedsightError, match="line 2 says width 640, height 480, but a.png is 64 x 48"):
        read_dataset(tmp_path)


def test_rsna_pneumonia_boxes_by_corner_and_size_on_dicom(tmp_path):
    """RSNA's stage_2_train_labels.csv: patientId,x,y,width,height,Target; ids without their ending, DICOM
    images in a folder below; Target 0 rows (no box) are images without boxes."""
    from medsight.synthetic.dicom_series import write_series

    root = tmp_path / "rsna"
    ids = ["0004cfab-14fd", "00313ee0-9eaa", "00322d4d-1c29", "003d8fa0-6bf1"]
    (root / "stage_2_train_images").mkdir(parents=True)
    for k, case in enumerate(ids):  # one single-slice file each, named by its id
        written = write_series(tmp_path / "slices" / case, np.full((1, 40, 50), 100 + k))[0]
        written.rename(root / "stage_2_train_images" / f"{case}.dcm")
    rows = ["patientId,x,y,width,height,Target", f"{ids[0]},,,,,0", f"{ids[1]},5,6,10.5,12,1",
            f"{ids[1]},30,10,8,8,1", f"{ids[2]},0,0,50,40,1", f"{ids[3]},,,,,0"]
    (root / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    assert detect_format(root) == ("box_csv", "detection")
    data = read_dataset(root)
    assert data.classes == ["1"] and data.case_ids == ids
    order = {case: k for k, case in enumerate(data.case_ids)}
    assert np.allclose(data.boxes[order[ids[1]]], [[6, 5, 18, 15.5], [10, 30, 18, 38]])  # (y1, x1, y2, x2)
    assert len(data.boxes[order[ids[0]]]) == 0 and data.shapes[order[ids[2]]] == (40, 50)

    (root / "stage_2_train_labels.csv").write_text("\n".join(rows[:4] + [f"{ids[2]},10,10,45,5,1"]) + "\n", encoding="utf-8")
    with pytest.raises(MedsightError, match="line 5.*outside the 50 x 40 image"):
        read_dataset(root)
