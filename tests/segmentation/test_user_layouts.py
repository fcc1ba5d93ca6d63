"""nnU-Net folders as users bring them: label values that skip numbers (BraTS' 0, 1, 4), one RGB picture per
case, macOS '._' copies, and misnamed files that would otherwise drop cases without a word."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight import api
from medsight.errors import MedsightError
from medsight.io.segmentation import read_segmentation
from medsight.losses.segmentation import SegmentationLoss
from medsight.tasks.segmentation.infer import class_values, to_values

from tests.segmentation.test_end_to_end import shrink_plan
from tests.segmentation.conftest import nnunet_folder, write_volume


def test_loss_maps_label_values_to_channels():
    # values 0, 1, 4 -> channels 0, 1, 2: a label map in values scores as the same map in channels
    label_values = torch.tensor([[[[0, 1], [4, 4]]]])
    label_channels = torch.tensor([[[[0, 1], [2, 2]]]])
    logits = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    by_value = SegmentationLoss(values=[1, 4, 0])(logits, label_values)
    by_channel = SegmentationLoss()(logits, label_channels)
    assert torch.allclose(by_value, by_channel)
    assert SegmentationLoss(values=[0, 1, 2]).lookup is None  # contiguous values need no lookup


def test_channels_back_to_values():
    plan = {"labels": {"0": "background", "1": "necrosis", "4": "enhancing"}}
    assert class_values(plan).tolist() == [0, 1, 4]
    assert to_values(np.array([[0, 1], [2, 2]]), plan).tolist() == [[0, 1], [4, 4]]
    plain = {"labels": {"0": "background", "1": "a", "2": "b"}}
    assert class_values(plain) is None and to_values(np.array([2]), plain).tolist() == [2]


def test_train_and_predict_with_label_values_that_skip(tmp_path: Path):
    import SimpleITK as sitk

    torch.set_num_threads(1)
    root = nnunet_folder(tmp_path / "brats", cases=6, shape=(16, 16, 16),
                         labels={"background": 0, "a": 1, "b": 4})
    for label_file in (root / "labelsTr").iterdir():  # the cube of 2 becomes a cube of 4
        array = sitk.GetArrayFromImage(sitk.ReadImage(str(label_file)))
        write_volume(label_file, np.where(array == 2, 4, array).astype(np.uint8))
    run = tmp_path / "run"
    api.plan(root, run)
    shrink_plan(run, iterations_per_epoch=2)
    api.train(root, run, epochs=1, model="unet")
    records = api.predict([run], [root / "imagesTr" / "case_0_0000.nii.gz"], tmp_path / "pred")
    mask = sitk.GetArrayFromImage(sitk.ReadImage(records[0]["output"]))
    found = set(np.unique(mask).tolist())
    assert found <= {0, 1, 4} and 4 in found  # written in the data set's values, never channel 2


def test_one_rgb_picture_per_case(tmp_path: Path):
    from PIL import Image

    root = tmp_path / "rgb"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):
        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / "imagesTr" / f"c{k}_0000.png")
        mask = np.zeros((12, 12), np.uint8)
        mask[2:6, 2:6] = 1
        Image.fromarray(mask).save(root / "labelsTr" / f"c{k}.png")
    (root / "imagesTr" / "._c0_0000.png").write_bytes(b"\x00\x05\x16\x07")  # macOS resource fork copy
    meta = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "x": 1},
            "numTraining": 3, "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    dataset = read_segmentation(root)
    assert dataset.case_ids == ["c0", "c1", "c2"]
    assert dataset.load_case(0).image.shape == (3, 12, 12)


def test_image_without_channel_number_is_named(tiny3d: Path):
    bad = tiny3d / "imagesTr" / "case_1.nii.gz"
    (tiny3d / "imagesTr" / "case_1_0000.nii.gz").rename(bad)
    with pytest.raises(MedsightError) as info:
        read_segmentation(tiny3d)
    assert "case_1.nii.gz" in str(info.value) and "_0000" in str(info.value) and "\n" not in str(info.value)


def test_label_without_image_is_named(tiny3d: Path):
    (tiny3d / "imagesTr" / "case_2_0000.nii.gz").unlink()
    with pytest.raises(MedsightError) as info:
        read_segmentation(tiny3d)
    assert "case_2.nii.gz" in str(info.value) and "has no image" in str(info.value)
