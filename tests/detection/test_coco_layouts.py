"""COCO files where the tools that write them put them: CVAT's annotations/instances_default.json with images/,
the COCO 2017 release's annotations/instances_<subset>2017.json with <subset>2017/, and a .json given directly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight import api
from medsight.data.splits import splits_location
from medsight.errors import MedsightError
from medsight.io.detection import read_coco
from medsight.io.formats import detect_format, read_dataset


def write_subset(root: Path, json_name: str, image_folder: str, ids=(41, 42), categories=((3, "cell"), (7, "nucleus")),
                 prefix: str = "") -> Path:
    """An annotation file under root naming images ids (one box of each category on each) in root/image_folder."""
    (root / image_folder).mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for image_id in ids:
        name = f"{prefix}img_{image_id}.png"
        Image.fromarray(np.zeros((32, 40), np.uint8)).save(root / image_folder / name)
        images.append({"id": image_id, "file_name": name, "width": 40, "height": 32})
        for k, (category, _) in enumerate(categories):
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": category, "bbox": [2 + 10 * k, 3, 8, 6]})
    file = root / json_name
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": c, "name": n} for c, n in categories]}), encoding="utf-8")
    return file


@pytest.mark.parametrize("image_folder", ["images", "images/default"])  # CVAT 1.x, and its Datumaro-based exports
def test_cvat_export_is_read_with_its_images_beside_the_annotations_folder(tmp_path, image_folder):
    write_subset(tmp_path, "annotations/instances_default.json", image_folder)
    assert detect_format(tmp_path) == ("coco", "detection")  # was: "annotations is an empty class folder"
    data = read_coco(tmp_path)
    assert data.classes == ["cell", "nucleus"] and data.category_ids == [3, 7] and data.image_ids == [41, 42]
    assert [s[0] for s in data.sources] == [tmp_path / image_folder / "img_41.png", tmp_path / image_folder / "img_42.png"]
    np.testing.assert_array_equal(data.labels[0], [0, 1])
    assert api.check(tmp_path)["format"] == "coco"  # what `medsight check` prints


def test_coco_2017_layout_reads_each_instances_file_as_its_split(tmp_path):
    write_subset(tmp_path, "annotations/instances_train2017.json", "train2017", ids=(1, 2, 3, 4))
    write_subset(tmp_path, "annotations/instances_val2017.json", "val2017", ids=(9, 10))
    # keypoints files describe the same images without boxes: they are not subsets
    (tmp_path / "annotations" / "person_keypoints_val2017.json").write_text("{}", encoding="utf-8")
    data = read_dataset(tmp_path)
    assert data.format == "coco" and len(data) == 6 and data.category_ids == [3, 7]
    assert sorted(data.image_ids[i] for i in data.splits["val"]) == [9, 10]
    assert all(data.sources[i][0].parent.name == "val2017" for i in data.splits["val"])
    train_and_test = np.concatenate([data.splits[s] for s in data.splits if s != "val"])
    assert sorted(data.image_ids[i] for i in train_and_test) == [1, 2, 3, 4]


def test_a_json_given_directly_is_read_alone_and_its_splits_file_is_no_subset(tmp_path):
    write_subset(tmp_path, "annotations/instances_train2017.json", "train2017", ids=(1, 2, 3, 4, 5))
    val = write_subset(tmp_path, "annotations/instances_val2017.json", "val2017", ids=(9, 10, 11, 12, 13))
    assert detect_format(val) == ("coco", "detection")
    data = read_dataset(val)
    assert sorted(data.image_ids) == [9, 10, 11, 12, 13] and data.path == val
    # its carved splits go beside it under its own name (plan writes them), which the folder's reader does not
    # take for a subset
    location = splits_location(val)
    assert location == val.parent / "instances_val2017.splits_final.json"
    location.write_text("[]", encoding="utf-8")
    assert len(read_dataset(tmp_path)) == 10


def test_a_coco_json_of_any_name_beside_its_images(tmp_path):
    file = write_subset(tmp_path, "export.json", "images")
    assert detect_format(file) == ("coco", "detection")
    assert read_coco(file).image_ids == [41, 42]
    other = tmp_path / "notes.json"
    other.write_text(json.dumps({"labels": {"0": "a"}}), encoding="utf-8")
    with pytest.raises(MedsightError, match="COCO .json"):
        detect_format(other)


def test_subsets_numbered_from_one_each_keep_their_own_ids_and_boxes(tmp_path):
    write_subset(tmp_path, "annotations/instances_train.json", "images/train", ids=(1, 2), prefix="t")
    write_subset(tmp_path, "annotations/instances_val.json", "images/val", ids=(1,), categories=((3, "cell"), (7, "nucleus")),
                 prefix="v")
    data = read_coco(tmp_path)
    assert data.image_ids == [1, 2, 1] and data.case_ids == ["timg_1", "timg_2", "vimg_1"]
    assert [len(b) for b in data.boxes] == [2, 2, 2]  # val's image 1 got its own boxes, not train's image 1's too
    assert list(data.splits["val"]) == [2]


def test_subsets_with_other_categories_are_refused(tmp_path):
    write_subset(tmp_path, "annotations/instances_train.json", "images/train")
    write_subset(tmp_path, "annotations/instances_val.json", "images/val", categories=((3, "cell"), (8, "nucleus")))
    with pytest.raises(MedsightError, match="other categories"):
        read_coco(tmp_path)
