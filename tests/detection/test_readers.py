"""Detection readers: COCO, Pascal VOC and nnDetection raw, and a one-line error for each kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from medsight.errors import MedsightError
from medsight.io.formats import detect_format
from medsight.io.detection import read_coco, read_nndetection, read_voc


def write_coco(root: Path, boxes=((2, 3, 10, 5),), category_ids=(1,), missing_file: bool = False) -> Path:
    (root / "images").mkdir(parents=True)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(root / "images" / "a.png")
    images = [{"id": 7, "file_name": "b.png" if missing_file else "a.png", "width": 40, "height": 32}]
    anns = [{"id": k + 1, "image_id": 7, "category_id": c, "bbox": list(b)} for k, (b, c) in enumerate(zip(boxes, category_ids))]
    (root / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                       "categories": [{"id": 1, "name": "cell"}]}))
    return root


def write_voc(root: Path, box=("1", "2", "10", "20"), drop: str | None = None) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "JPEGImages" / "x.jpg")
    fields = dict(zip(("xmin", "ymin", "xmax", "ymax"), box))
    bnd = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if k != drop)
    size = "<size><width>40</width><height>30</height><depth>3</depth></size>"
    name = "" if drop == "name" else "<name>RBC</name>"
    (root / "Annotations" / "x.xml").write_text(
        f"<annotation><filename>x.jpg</filename>{size}<object>{name}<bndbox>{bnd}</bndbox></object></annotation>")
    return root


def write_nndet(root: Path, instances: dict, labels=None) -> Path:
    for sub in ("imagesTr", "labelsTr"):
        (root / sub).mkdir(parents=True)
    mask = np.zeros((12, 16, 16), np.uint8)
    mask[2:5, 3:7, 4:9] = 1
    mask[8:10, 10:12, 10:14] = 2
    sitk.WriteImage(sitk.GetImageFromArray(np.random.rand(12, 16, 16).astype(np.float32)), str(root / "imagesTr" / "c1_0000.nii.gz"))
    sitk.WriteImage(sitk.GetImageFromArray(mask), str(root / "labelsTr" / "c1.nii.gz"))
    (root / "labelsTr" / "c1.json").write_text(json.dumps({"instances": instances}), encoding="utf-8")
    (root / "dataset.json").write_text(json.dumps({"labels": labels or {"0": "nodule", "1": "mass"}, "modality": {"0": "CT"}}), encoding="utf-8")
    return root


def test_coco_boxes_become_array_order_corners(tmp_path):
    root = write_coco(tmp_path)
    assert detect_format(root) == ("coco", "detection")
    data = read_coco(root)
    assert data.classes == ["cell"] and data.spatial_dims == 2
    np.testing.assert_allclose(data.boxes[0], [[3, 2, 8, 12]])  # [x, y, w, h] -> (row0, col0, row1, col1)
    assert data.load_case(0).shape == (1, 32, 40)


def test_voc_one_based_corners_become_continuous(tmp_path):
    data = read_voc(write_voc(tmp_path))
    np.testing.assert_allclose(data.boxes[0], [[1, 0, 20, 10]])
    assert data.classes == ["RBC"]


def test_nndetection_boxes_from_instance_masks(tmp_path):
    data = read_nndetection(write_nndet(tmp_path, {"1": 0, "2": 1}))
    assert detect_format(tmp_path)[0] == "nndetection"
    np.testing.assert_allclose(data.boxes[0], [[2, 3, 4, 5, 7, 9], [8, 10, 10, 10, 12, 14]])
    assert data.labels[0].tolist() == [0, 1]


def edit_coco(root: Path, change) -> Path:
    """write_coco's folder with a second image and its JSON changed by change(coco)."""
    write_coco(root)
    Image.fromarray(np.zeros((32, 40), np.uint8)).save(root / "images" / "c.png")
    coco = json.loads((root / "annotations.json").read_text())
    coco["images"].append({"id": 8, "file_name": "c.png", "width": 40, "height": 32})
    coco["annotations"].append({"id": 2, "image_id": 8, "category_id": 1, "bbox": [1, 1, 4, 4]})
    change(coco)
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def set_in(obj: dict, **values) -> None:
    obj.update(values)


def test_coco_without_width_and_height_takes_the_image_header(tmp_path):
    root = edit_coco(tmp_path, lambda c: [(i.pop("width"), i.pop("height")) for i in c["images"]])
    assert read_coco(root).shapes == [(32, 40), (32, 40)]


def test_voc_size_of_zero_takes_the_image_header(tmp_path):
    data = read_voc(edit_voc(write_voc(tmp_path), "<width>40</width><height>30</height>", "<width>0</width><height>0</height>"))
    assert data.shapes == [(30, 40)]
    np.testing.assert_allclose(data.boxes[0], [[1, 0, 20, 10]])


def edit_voc(root: Path, old: str, new: str) -> Path:
    xml = root / "Annotations" / "x.xml"
    xml.write_text(xml.read_text().replace(old, new))
    return root


def voc_with_listings(root: Path, train: str, test: str) -> Path:
    write_voc(root)
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(root / "JPEGImages" / "y.jpg")
    (root / "Annotations" / "y.xml").write_text((root / "Annotations" / "x.xml").read_text().replace("x.jpg", "y.jpg"))
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text(train)
    (root / "ImageSets" / "Main" / "test.txt").write_text(test)
    return root


@pytest.mark.parametrize("make, expected", [
    (lambda p: edit_coco(p, lambda c: set_in(c["images"][1], id=7)), "'images' lists image id 7 twice"),
    (lambda p: edit_coco(p, lambda c: c["categories"].append({"id": 2, "name": "cell"})), "has the name 'cell' twice"),
    (lambda p: edit_coco(p, lambda c: set_in(c["annotations"][1], bbox=[1, "a", 4, 4])), "annotation 2 needs"),
    (lambda p: edit_coco(p, lambda c: set_in(c["images"][1], width=80)), "says width 80, height 32, but c.png is 40 x 32"),
    (lambda p: voc_with_listings(p, "x\ny\n", "y\n"), "test.txt: lists y, which train.txt lists too"),
    (lambda p: edit_voc(write_voc(p), "<width>40</width>", "<width>80</width>"), "<size> says width 80, height 30, but x.jpg is 40 x 30"),

    (lambda p: write_coco(p, boxes=((35, 3, 10, 5),)), "(bbox [35, 3, 10, 5]) lies outside the 40 x 32 image"),
    (lambda p: write_coco(p, boxes=((2, 3, 0, 5),)), "non-positive size"),
    (lambda p: write_coco(p, category_ids=(4,)), "category_id 4"),
    (lambda p: write_coco(p, missing_file=True), "b.png, which does not exist"),
    (lambda p: write_voc(p, box=("1", "2", "50", "20")), "xmax 50, ymax 20) lies outside the 40 x 30 image"),
    (lambda p: write_voc(p, box=("10", "2", "5", "20")), "non-positive size"),
    (lambda p: write_voc(p, drop="ymax"), "missing the field <ymax>"),
    (lambda p: write_voc(p, drop="name"), "missing the field <name>"),
    (lambda p: write_nndet(p, {"1": 0}), "instance id(s) [2]"),
    (lambda p: write_nndet(p, {"1": 0, "2": 5}), "class 5"),
], ids=["coco-image-id-twice", "coco-category-name-twice", "coco-bbox-not-numbers", "coco-size-not-the-file",
        "voc-case-in-two-listings", "voc-size-not-the-file", "coco-outside", "coco-size", "coco-class", "coco-missing-file", "voc-outside", "voc-size", "voc-field",
        "voc-name", "nndet-unlisted-instance", "nndet-class"])
def test_bad_input_is_one_line_naming_the_file(tmp_path, make, expected):
    from medsight.api import check

    root = make(tmp_path)
    with pytest.raises(MedsightError) as info:
        check(root)
    message = str(info.value)
    assert expected in message and "\n" not in message
    assert str(tmp_path) in message


def test_check_reads_every_image(tmp_path):
    """A corrupt picture is found by `check`, not by the training step that first reaches it."""
    from medsight.api import check

    root = write_voc(tmp_path)
    (root / "JPEGImages" / "x.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MedsightError, match="x.jpg: is not a readable JPEG"):
        check(root)
