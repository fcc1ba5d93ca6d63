"""Images paired with masks by name, without a dataset.json: the layouts of Kvasir-SEG, ISIC, BUSI, CHASE_DB1,
LiTS and nnU-Net folders that lack their dataset.json, read as they come."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight import api
from medsight.errors import MedsightError
from medsight.io.formats import detect_format
from medsight.io.mask_pairs import read_mask_pairs

from tests.segmentation.test_end_to_end import shrink_plan
from tests.segmentation.conftest import write_volume


def picture(path: Path, array: np.ndarray, quality: int | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **({"quality": quality} if quality else {}))
    return path


def disc(size: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2


def rgb_with_disc(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    inside = disc(size, tuple(rng.integers(8, size - 8, 2)), int(rng.integers(4, 7)))
    image = rng.integers(20, 90, (size, size, 3)).astype(np.uint8)
    image[inside] = (200, 60, 60)
    return image, inside


def kvasir(root: Path, cases: int = 4, size: int = 32) -> Path:
    """images/*.jpg and masks/*.jpg, the masks white on black and saved as lossy JPEG."""
    for k in range(cases):
        image, inside = rgb_with_disc(size, k)
        picture(root / "images" / f"cju{k:03d}.jpg", image)
        picture(root / "masks" / f"cju{k:03d}.jpg", np.where(inside, 255, 0).astype(np.uint8), quality=75)
    return root


def test_kvasir_jpeg_masks_binarised(tmp_path: Path):
    root = kvasir(tmp_path / "kvasir")
    assert detect_format(root) == ("mask_pairs", "segmentation")
    dataset = read_mask_pairs(root)
    assert dataset.labels == {0: "background", 1: "foreground"} and dataset.channels == ["R", "G", "B"]
    case = dataset.load_case(0)
    _, inside = rgb_with_disc(32, 0)
    assert case.image.shape == (3, 32, 32) and set(np.unique(case.label)) == {0, 1}
    assert (case.label.astype(bool) ^ inside).sum() <= 4  # JPEG noise removed by the binarisation


def test_isic_folders_by_their_words_and_mask_ending(tmp_path: Path):
    root = tmp_path / "isic"
    for k in range(3):
        image, inside = rgb_with_disc(24, k)
        picture(root / "ISIC2018_Task1-2_Training_Input" / f"ISIC_{k:07d}.jpg", image)
        picture(root / "ISIC2018_Task1_Training_GroundTruth" / f"ISIC_{k:07d}_segmentation.png",
                np.where(inside, 255, 0).astype(np.uint8))
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["ISIC_0000000", "ISIC_0000001", "ISIC_0000002"]
    assert dataset.load_case(2).label.sum() == rgb_with_disc(24, 2)[1].sum()


def test_busi_one_folder_with_class_subfolders_and_second_masks(tmp_path: Path):
    root = tmp_path / "Dataset_BUSI_with_GT"
    grey = np.full((20, 20), 90, np.uint8)
    first, second = disc(20, (5, 5), 3), disc(20, (14, 14), 3)
    picture(root / "benign" / "benign (1).png", grey)
    picture(root / "benign" / "benign (1)_mask.png", np.where(first, 255, 0).astype(np.uint8))
    picture(root / "benign" / "benign (1)_mask_1.png", np.where(second, 255, 0).astype(np.uint8))
    picture(root / "normal" / "normal (1).png", grey)
    picture(root / "normal" / "normal (1)_mask.png", np.zeros((20, 20), np.uint8))
    picture(root / "malignant" / "malignant (1).png", grey)
    picture(root / "malignant" / "malignant (1)_mask.png", np.where(second, 255, 0).astype(np.uint8))
    assert detect_format(root)[0] == "mask_pairs"
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["benign__benign (1)", "malignant__malignant (1)", "normal__normal (1)"]
    label = dataset.load_case(0).label
    assert label.sum() == (first | second).sum()  # both masks of the image, merged
    assert "1 image(s) with several masks" in dataset.summary()["masks"]


def test_chase_one_folder_first_observer(tmp_path: Path):
    root = tmp_path / "CHASEDB1"
    for name in ("Image_01L", "Image_01R", "Image_02L"):
        picture(root / f"{name}.jpg", np.full((16, 16, 3), 100, np.uint8))
        picture(root / f"{name}_1stHO.png", np.pad(np.full((4, 4), 255, np.uint8), 6))
        picture(root / f"{name}_2ndHO.png", np.zeros((16, 16), np.uint8))
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["Image_01L", "Image_01R", "Image_02L"]
    assert [c.label.name for c in dataset.cases] == ["Image_01L_1stHO.png", "Image_01R_1stHO.png", "Image_02L_1stHO.png"]
    assert dataset.load_case(1).label.sum() == 16


def test_nnunet_folders_without_dataset_json_3d(tmp_path: Path):
    root = tmp_path / "task"
    rng = np.random.default_rng(0)
    for k in range(4):
        label = np.zeros((8, 10, 12), np.uint8)
        label[2:5, 2:6, 2:6] = 1
        label[5:7, 6:9, 6:10] = 2
        write_volume(root / "imagesTr" / f"liver_{k}_0000.nii.gz", rng.normal(size=label.shape).astype(np.float32),
                     spacing=(0.8, 0.8, 2.5))
        write_volume(root / "labelsTr" / f"liver_{k}.nii.gz", label, spacing=(0.8, 0.8, 2.5))
    write_volume(root / "imagesTs" / "liver_9_0000.nii.gz", np.zeros((8, 10, 12), np.float32), spacing=(0.8, 0.8, 2.5))
    dataset = read_mask_pairs(root)
    assert dataset.spatial_dims == 3 and dataset.labels == {0: "background", 1: "class_1", 2: "class_2"}
    assert dataset.case_ids == ["liver_0", "liver_1", "liver_2", "liver_3", "liver_9"]
    assert [dataset.case_ids[i] for i in dataset.splits["unlabelled"]] == ["liver_9"]
    case = dataset.load_case(0)
    assert case.spacing == pytest.approx((2.5, 0.8, 0.8)) and set(np.unique(case.label)) == {0, 1, 2}


def test_lits_volume_and_segmentation_side_by_side(tmp_path: Path):
    root = tmp_path / "lits"
    for k in range(2):
        label = np.zeros((6, 8, 8), np.uint8)
        label[1:5, 1:7, 1:7] = 1
        label[2:4, 3:5, 3:5] = 2
        write_volume(root / f"volume-{k}.nii", np.full(label.shape, 40.0, np.float32))
        write_volume(root / f"segmentation-{k}.nii", label.astype(np.float32))  # LiTS stores some labels as floats
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["volume-0", "volume-1"] and set(dataset.labels) == {0, 1, 2}
    assert dataset.load_case(1).label.dtype == np.uint8

    (root / "labels.json").write_text(json.dumps({"1": "liver", "2": "tumour"}), encoding="utf-8")
    api.plan(root, tmp_path / "run")  # named as an organ and its lesion: trained as nested regions
    plan = json.loads((tmp_path / "run" / "plan.json").read_text(encoding="utf-8"))
    assert [r["name"] for r in plan["regions"]] == ["liver", "tumour"]


def test_split_folders_above_and_colour_masks_named(tmp_path: Path):
    root = tmp_path / "colour"
    red, green = disc(16, (4, 4), 3), disc(16, (11, 11), 3)
    for split, count in (("train", 4), ("test", 2)):
        for k in range(count):
            mask = np.zeros((16, 16, 3), np.uint8)
            mask[red] = (255, 0, 0)
            mask[green] = (0, 255, 0)
            picture(root / split / "images" / f"{split}{k}.png", np.full((16, 16), 50 + k, np.uint8))
            picture(root / split / "masks" / f"{split}{k}.png", mask)
    (root / "labels.json").write_text(json.dumps({str(1 << 24 | 0xFF0000): "tumour"}), encoding="utf-8")
    dataset = read_mask_pairs(root)
    assert dataset.labels == {0: "background", 1: "rgb_0_255_0", 2: "tumour"}
    assert [dataset.case_ids[i] for i in dataset.splits["test"]] == ["test0", "test1"]
    label = dataset.load_case(0).label
    assert (label[red] == 2).all() and (label[green] == 1).all() and label[~(red | green)].max() == 0


def expect(root: Path, name: str, words: str) -> None:
    with pytest.raises(MedsightError) as info:
        dataset = read_mask_pairs(root)
        for index in range(len(dataset.cases)):
            dataset.load_case(index)
    message = str(info.value)
    assert name in message and words in message and "\n" not in message, message


def test_bad_pairs_named(tmp_path: Path):
    root = kvasir(tmp_path / "stray")
    picture(root / "masks" / "lonely.png", np.zeros((32, 32), np.uint8))
    expect(root, "lonely.png", "mask without an image")

    root = kvasir(tmp_path / "missing")
    picture(root / "images" / "nomask.jpg", np.zeros((32, 32, 3), np.uint8))
    expect(root, "nomask.jpg", "has no mask")

    root = kvasir(tmp_path / "shape")
    picture(root / "masks" / "cju001.jpg", np.zeros((30, 32), np.uint8))
    expect(root, "cju001.jpg", "shape")

    root = tmp_path / "float"
    write_volume(root / "images" / "a.nii.gz", np.zeros((4, 4, 4), np.float32))
    write_volume(root / "labels" / "a.nii.gz", np.full((4, 4, 4), 0.5, np.float32))
    expect(root, "a.nii.gz", "non-integer")


def test_class_folders_stay_classification(tmp_path: Path):
    for name in ("benign", "malignant"):
        for k in range(2):
            picture(tmp_path / "cls" / name / f"{name}{k}.png", np.zeros((8, 8), np.uint8))
    assert detect_format(tmp_path / "cls") == ("imagefolder", "classification")


def test_train_and_predict_on_pairs(tmp_path: Path):
    torch.set_num_threads(1)
    root = kvasir(tmp_path / "kvasir", cases=8)
    run = tmp_path / "run"
    api.plan(root, run)
    shrink_plan(run, iterations_per_epoch=2)
    api.train(root, run, epochs=1, model="unet")
    metrics = api.evaluate(run, split="test")
    assert "dice" in json.dumps(metrics)
    records = api.predict([run], [root / "images" / "cju000.jpg"], tmp_path / "pred")
    from PIL import Image

    assert Image.open(records[0]["output"]).size == (32, 32)


def brats(root: Path, cases: int, shape: tuple[int, ...], modalities: tuple[str, ...], seed: int) -> Path:
    """BraTS case folders: <case>/<case>_<modality>.nii.gz, the i-th modality around i, and <case>_seg.nii.gz
    with labels 1 and 4 (BraTS skips 3), the 4 region brighter in every modality."""
    rng = np.random.default_rng(seed)
    for k in range(cases):
        case = f"BraTS20_Training_{k:03d}"
        label = np.zeros(shape, np.uint8)
        label[1:3, 1:4, 1:4] = 1
        label[3:6, 4:9, 4:9] = 4
        for offset, modality in enumerate(modalities):
            image = rng.normal(offset, 0.2, shape) + label / 4
            write_volume(root / case / f"{case}_{modality}.nii.gz", image.astype(np.float32))
        write_volume(root / case / f"{case}_seg.nii.gz", label)
    return root


def test_brats_case_folders_with_channels_and_skipping_labels(tmp_path: Path):
    root = brats(tmp_path / "MICCAI_BraTS2020_TrainingData", 3, (6, 10, 10), ("t1", "flair", "t2", "t1ce"), 0)
    (root / "name_mapping.csv").write_text("a,b\n", encoding="utf-8")  # BraTS ships such tables beside the cases
    assert detect_format(root) == ("mask_pairs", "segmentation")
    dataset = read_mask_pairs(root)
    assert dataset.channels == ["flair", "t1", "t1ce", "t2"] and dataset.labels == {0: "background", 1: "class_1", 4: "class_4"}
    case = dataset.load_case(2)
    assert case.image.shape == (4, 6, 10, 10) and abs(case.image[1].mean() - 0) < 0.5 and abs(case.image[0].mean() - 1) < 0.5
    assert set(np.unique(case.label)) == {0, 1, 4}


def test_kits_case_folders_and_a_case_missing_a_channel(tmp_path: Path):
    root = tmp_path / "kits19"
    for k in range(2):
        write_volume(root / f"case_{k:05d}" / "imaging.nii.gz", np.zeros((4, 6, 6), np.float32))
        write_volume(root / f"case_{k:05d}" / "segmentation.nii.gz", np.ones((4, 6, 6), np.uint8))
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["case_00000", "case_00001"] and dataset.channels == ["imaging"]

    write_volume(root / "case_00001" / "pet.nii.gz", np.zeros((4, 6, 6), np.float32))
    expect(root, "case_00001", "same image files")


def test_case_folders_train_and_predict_one_mask_per_case(tmp_path: Path):
    torch.set_num_threads(1)
    root = brats(tmp_path / "brats", 5, (8, 16, 16), ("t1", "flair"), 1)
    run = tmp_path / "run"
    api.plan(root, run)
    shrink_plan(run, iterations_per_epoch=2)
    api.train(root, run, epochs=1, model="unet")
    records = api.predict([run], [root], tmp_path / "pred")
    assert sorted(Path(r["output"]).name for r in records) == [f"BraTS20_Training_{k:03d}.nii.gz" for k in range(5)]
    import SimpleITK as sitk

    mask = sitk.GetArrayFromImage(sitk.ReadImage(records[0]["output"]))
    assert mask.shape == (8, 16, 16) and set(np.unique(mask).tolist()) <= {0, 1, 4}


def test_other_folder_read_with_the_runs_mask_values(tmp_path: Path):
    from medsight.io.mask_values import adopt_coding

    def grey_levels(root: Path, levels: tuple[int, ...]) -> Path:
        for k in range(3):
            mask = np.zeros((12, 12), np.uint8)
            for j, level in enumerate(levels):
                mask[j * 4:j * 4 + 3, 2:9] = level
            picture(root / "images" / f"c{k}.png", np.full((12, 12), 60, np.uint8))
            picture(root / "masks" / f"c{k}.png", mask)
        return root

    trained = read_mask_pairs(grey_levels(tmp_path / "train", (128, 255)))
    assert trained.labels == {0: "background", 1: "class_128", 2: "class_255"}
    other = read_mask_pairs(grey_levels(tmp_path / "other", (255,)))  # no 128 here: 255 alone would be label 1
    adopt_coding(other, trained.info())
    assert other.labels == trained.labels and set(np.unique(other.load_case(0).label)) == {0, 2}
    with pytest.raises(MedsightError, match="did not have"):
        adopt_coding(read_mask_pairs(grey_levels(tmp_path / "new", (77, 255))), trained.info())


def test_dicom_series_by_patient_with_nifti_masks(tmp_path: Path):
    """A hospital export: images/<patient>/ a CT series each, masks/<patient>.nii.gz drawn on it (3D Slicer)."""
    from medsight.synthetic.dicom_series import write_series

    root = tmp_path / "export"
    for k in range(3):
        volume = np.full((4, 10, 12), 1024 + 40, np.int32)
        volume[1:3, 2:6, 3:8] = 1024 + 200
        write_series(root / "images" / f"patient{k}", volume)
        label = ((volume - 1024) > 100).astype(np.uint8)
        write_volume(root / "masks" / f"patient{k}.nii.gz", label, spacing=(0.5, 0.5, 2.0))
    assert detect_format(root) == ("mask_pairs", "segmentation")
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == ["patient0", "patient1", "patient2"] and dataset.spatial_dims == 3
    case = dataset.load_case(1)
    assert case.image.shape == (1, 4, 10, 12) and case.image.max() == 200  # in HU
    assert case.label.sum() == 2 * 4 * 5 and case.spacing == pytest.approx((2.0, 0.5, 0.5))


def test_nuclei_case_folders_with_a_mask_per_object(tmp_path: Path):
    """Data Science Bowl 2018: stage1_train/<id>/images/<id>.png (RGBA) and <id>/masks/<one per nucleus>.png."""
    root = tmp_path / "stage1_train"
    nuclei = [disc(20, (5, 5), 3), disc(20, (14, 12), 4), disc(20, (4, 15), 2)]
    for k in range(3):
        case = f"{k:04x}e9d1"
        rgba = np.zeros((20, 20, 4), np.uint8)
        rgba[..., 3] = 255
        picture(root / case / "images" / f"{case}.png", rgba)
        for j, nucleus in enumerate(nuclei[: k + 1]):
            picture(root / case / "masks" / f"{j:03d}ab.png", np.where(nucleus, 255, 0).astype(np.uint8))
    assert detect_format(root) == ("mask_pairs", "segmentation")
    dataset = read_mask_pairs(root)
    assert dataset.labels == {0: "background", 1: "foreground"} and dataset.channels == ["R", "G", "B"]
    assert dataset.load_case(2).label.sum() == sum(n.sum() for n in nuclei)  # every nucleus, merged


def test_acdc_patient_folders_leave_out_images_without_masks(tmp_path: Path):
    """ACDC: patient001/patient001_frame01.nii.gz with _frame01_gt, _frame12 with _frame12_gt, and the
    unlabelled 4D cine patient001_4d.nii.gz beside them."""
    import SimpleITK as sitk

    root = tmp_path / "training"
    for k in (1, 2):
        patient = f"patient{k:03d}"
        for frame in ("frame01", "frame12"):
            label = np.zeros((4, 8, 8), np.uint8)
            label[1:3, 2:6, 2:6] = 3  # ACDC's labels: 1 RV, 2 myocardium, 3 LV
            label[1:3, 0:2, 0:2] = 1
            write_volume(root / patient / f"{patient}_{frame}.nii.gz", np.zeros((4, 8, 8), np.float32))
            write_volume(root / patient / f"{patient}_{frame}_gt.nii.gz", label)
        cine = sitk.JoinSeries([sitk.GetImageFromArray(np.zeros((4, 8, 8), np.float32))] * 3)
        sitk.WriteImage(cine, str(root / patient / f"{patient}_4d.nii.gz"))
        (root / patient / "Info.cfg").write_text("ED: 1\nES: 12\n", encoding="utf-8")
    dataset = read_mask_pairs(root)
    assert dataset.case_ids == [f"patient00{k}__patient00{k}_{f}" for k in (1, 2) for f in ("frame01", "frame12")]
    assert set(dataset.labels) == {0, 1, 3} and "2 image(s) without a mask left out" in dataset.summary()["masks"]


def test_drive_numbered_names_gif_masks_and_a_field_of_view_folder(tmp_path: Path):
    """DRIVE: training/images/21_training.tif with training/1st_manual/21_manual1.gif and the field-of-view
    mask training/mask/21_training_mask.gif; test/ has 2nd_manual/ too."""
    import tifffile
    from PIL import Image

    root = tmp_path / "DRIVE"
    vessel = np.zeros((16, 18), np.uint8)
    vessel[3:13, 8:10] = 255
    for split, numbers in (("training", (21, 22, 23)), ("test", (1, 2))):
        for n in numbers:
            stem = f"{n:02d}_{split}"
            (root / split / "images").mkdir(parents=True, exist_ok=True)
            tifffile.imwrite(root / split / "images" / f"{stem}.tif", np.full((16, 18, 3), 90, np.uint8))
            for folder, name, mask in (("1st_manual", f"{n:02d}_manual1.gif", vessel),
                                       ("mask", f"{stem}_mask.gif", np.full((16, 18), 255, np.uint8))):
                (root / split / folder).mkdir(exist_ok=True)
                Image.fromarray(mask).save(root / split / folder / name)
            if split == "test":
                (root / split / "2nd_manual").mkdir(exist_ok=True)
                Image.fromarray(np.zeros((16, 18), np.uint8)).save(root / split / "2nd_manual" / f"{n:02d}_manual2.gif")
    assert detect_format(root) == ("mask_pairs", "segmentation")
    dataset = read_mask_pairs(root)
    assert [dataset.case_ids[i] for i in dataset.splits["test"]] == ["01_test", "02_test"]
    assert all(c.label.parent.name == "1st_manual" for c in dataset.cases)
    assert dataset.load_case(3).label.sum() == 20 and dataset.channels == ["R", "G", "B"]
