"""The split protocol (medsight.data.splits): fixed by the data, not by --seed; patients kept together;
splits_final.json honoured and checked for every task; evaluate --data scores a whole folder."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medsight import api
from medsight.cli import main
from medsight.data.splits import SPLITS_FILE, cache_location


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # the per-data split cache of read-only folders


def save_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def class_folder(root: Path, per_class: int = 20, size: int = 16) -> Path:
    """DATA/<class>/<image>, no splits: the class is the brightness of the image."""
    rng = np.random.default_rng(0)
    for k, name in enumerate(("dark", "bright")):
        for i in range(per_class):
            save_png(root / name / f"{i}.png", (rng.integers(0, 60, (size, size)) + 120 * k).astype(np.uint8))
    return root


def coco_without_splits(root: Path) -> Path:
    from medsight.synthetic.detection import make_blobs_2d

    make_blobs_2d(root, seed=0, num_images=20, size=48)
    coco = json.loads((root / "annotations.json").read_text(encoding="utf-8"))
    for image in coco["images"]:
        image.pop("split")
    (root / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return root


def segmentation_without_test(root: Path) -> Path:
    from medsight.synthetic.segmentation import make_segmentation_dataset

    make_segmentation_dataset(root, spatial_dims=2, num_cases=14, seed=0, size=32)
    for folder in ("imagesTs", "labelsTs"):
        shutil.rmtree(root / folder)
    return root


def shrink_plan(run: Path) -> None:
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    if plan["task"] == "segmentation":
        plan.update({"iterations_per_epoch": 1, "batch_size": 2, "validation_cases": 1})
        plan["inference"]["mirror_axes"] = []
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


@pytest.mark.parametrize("make", [class_folder, coco_without_splits, segmentation_without_test],
                         ids=["classification", "detection", "segmentation"])
def test_seed_0_and_seed_1_train_and_test_on_the_same_cases(tmp_path, make):
    data = make(tmp_path / "data")
    recorded = []
    for seed in (0, 1):
        run = tmp_path / f"run_seed{seed}"
        api.plan(data, run)
        shrink_plan(run)
        model = {"classification": "lenet5", "segmentation": "dynunet_tiny"}.get(json.loads((run / "plan.json").read_text(encoding="utf-8"))["task"])
        api.train(data, run, epochs=1, seed=seed, model=model)
        recorded.append(json.loads((run / "dataset.json").read_text(encoding="utf-8"))["splits"])
    assert recorded[0]["test"] and recorded[0]["val"]
    for split in ("train", "val", "test"):
        assert recorded[0][split] == recorded[1][split]
    assert not set(recorded[0]["test"]) & (set(recorded[0]["train"]) | set(recorded[0]["val"]))
    written = json.loads((data / SPLITS_FILE).read_text(encoding="utf-8"))  # nnU-Net's layout, with the shared test split
    assert written[0]["val"] == recorded[0]["val"] and written[0]["test"] == recorded[0]["test"]


def test_folds_partition_the_training_cases_and_share_one_plan(tmp_path):
    data = class_folder(tmp_path / "data")
    folds = [api.read_dataset(data, fold=k)[1] for k in range(5)]
    test = folds[0].splits["test"]
    vals = [set(f.splits["val"].tolist()) for f in folds]
    assert all(np.array_equal(f.splits["test"], test) for f in folds)
    assert sum(len(v) for v in vals) == 40 - len(test) and set().union(*vals) == set(range(40)) - set(test.tolist())
    plans = [api.plan(data, tmp_path / f"plan{k}", fold=k) for k in range(5)]
    assert all(p == plans[0] for p in plans)  # fingerprinted on every fold's training cases


def labels_csv_with_patients(root: Path) -> Path:
    """12 patients with 3 images each; the label is the patient's."""
    rows = [("path", "label", "patient")]
    rng = np.random.default_rng(1)
    for p in range(12):
        for i in range(3):
            name = f"p{p}_{i}.png"
            save_png(root / name, rng.integers(0, 255, (8, 8)).astype(np.uint8))
            rows.append((name, "a" if p % 2 else "b", f"P{p:02d}"))
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return root


def test_a_patient_never_straddles_splits(tmp_path):
    data = labels_csv_with_patients(tmp_path / "data")
    for fold in range(5):
        _, dataset = api.read_dataset(data, fold=fold)
        side = {}
        for split in ("train", "val", "test"):
            for i in dataset.splits[split]:
                patient = dataset.groups[i]
                assert side.setdefault(patient, split) == split, f"{patient} in {side[patient]} and {split}"
        classes = dataset.labels[dataset.splits["test"]]
        assert set(classes.tolist()) == {0, 1}  # stratified too


def test_patients_csv_groups_the_cases_of_other_layouts(tmp_path):
    data = segmentation_without_test(tmp_path / "data")
    cases = sorted(p.name[: -len("_0000.png")] for p in (data / "imagesTr").glob("*_0000.png"))
    lines = ["case,patient"] + [f"{c},{'PA' if k < 6 else 'PB' + str(k)}" for k, c in enumerate(cases)]
    (data / "patients.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _, dataset = api.read_dataset(data)
    first_six = {dataset.case_ids.index(c) for c in cases[:6]}
    holding = [split for split in ("train", "val", "test") if first_six & set(dataset.splits[split].tolist())]
    assert len(holding) == 1  # the six cases of patient PA stay together


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize("problem, words", [
    ("unknown", "names case ghost, which the data set does not have"),
    ("repeated", "lists case dark/0.png twice"),
    ("both_sides", "in both train and val"),
])
def test_a_bad_splits_file_is_one_line_naming_file_and_case(tmp_path, capsys, problem, words):
    data = class_folder(tmp_path / "data", per_class=4)
    cases = [f"dark/{i}.png" for i in range(4)] + [f"bright/{i}.png" for i in range(4)]
    fold = {"train": cases[:6], "val": cases[6:]}
    if problem == "unknown":
        fold["val"] = fold["val"] + ["ghost"]
    elif problem == "repeated":
        fold["train"] = fold["train"] + [cases[0]]
    else:
        fold["val"] = fold["val"] + [cases[0]]
    (data / SPLITS_FILE).write_text(json.dumps([fold]), encoding="utf-8")
    code, err = run_cli(capsys, "check", str(data))
    assert code == 2 and SPLITS_FILE in err and words in err and "\n" not in err


def test_a_splits_file_leaving_a_patient_on_both_sides_is_refused(tmp_path, capsys):
    data = labels_csv_with_patients(tmp_path / "data")
    cases = [f"p{p}_{i}.png" for p in range(12) for i in range(3)]
    (data / SPLITS_FILE).write_text(json.dumps([{"train": cases[:-1], "val": cases[-1:]}]), encoding="utf-8")
    code, err = run_cli(capsys, "check", str(data))
    assert code == 2 and "patient P11 on both sides" in err and "p11_2.png" in err and SPLITS_FILE in err


def test_a_users_splits_file_is_honoured_for_detection(tmp_path):
    data = coco_without_splits(tmp_path / "data")
    names = [f"blob_{i:03d}" for i in range(20)]
    (data / SPLITS_FILE).write_text(json.dumps([{"train": names[:10], "val": names[10:15], "test": names[15:]}]), encoding="utf-8")
    _, dataset = api.read_dataset(data)
    got = {k: [dataset.case_ids[i] for i in v] for k, v in dataset.splits.items()}
    assert got == {"train": names[:10], "val": names[10:15], "test": names[15:]}
    assert api.check(data)["split"]["origin"] == "file"


def test_read_only_data_keeps_its_splits_in_a_cache(tmp_path, monkeypatch, capsys):
    import medsight.data.splits as splits

    data = class_folder(tmp_path / "data", per_class=6)
    real_write = splits.write_splits_file

    def refuse_beside(path, folds, test):
        if Path(path).parent == data:
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, folds, test)

    monkeypatch.setattr(splits, "write_splits_file", refuse_beside)
    api.plan(data, tmp_path / "run")
    cached = cache_location(data)
    assert cached.is_file() and not (data / SPLITS_FILE).exists()
    assert "read-only" in capsys.readouterr().err
    _, again = api.read_dataset(data)
    assert again.split_info["file"] == str(cached) and again.split_info["written"]


def test_check_warns_about_a_patient_and_an_identical_image_in_two_given_splits(tmp_path, capsys):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    rows = [("path", "label", "split", "patient")]
    for i in range(8):
        save_png(root / f"{i}.png", rng.integers(0, 255, (8, 8)).astype(np.uint8))
        rows.append((f"{i}.png", "a" if i % 2 else "b", ("train", "train", "val", "val", "test", "test", "train", "train")[i],
                     f"P{i}"))
    rows[3] = ("2.png", "b", "val", "P0")  # patient P0 in train (0.png) and val (2.png)
    shutil.copyfile(root / "6.png", root / "4.png")  # the same image in train (6.png) and test (4.png)
    with open(root / "labels.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    code, err = run_cli(capsys, "check", str(root))
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert any("patient P0" in w and "0.png (train)" in w and "2.png (val)" in w for w in warnings)
    assert any("identical image" in w and "4.png (test)" in w and "6.png (train)" in w for w in warnings)


def test_evaluate_data_folder_scores_every_case(tmp_path):
    data = class_folder(tmp_path / "data", per_class=10)
    run = tmp_path / "run"
    api.train(data, run, epochs=1, model="lenet5")
    external = class_folder(tmp_path / "external", per_class=7)
    result = api.evaluate(run, data=external)
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["scored"] == {"split": "test", "cases": 14, "origin": "whole folder as test", "data": str(external)}
    assert result["scored"]["cases"] == 14
    assert not (external / SPLITS_FILE).exists()  # scoring a folder writes nothing beside it


def test_a_folder_marked_read_only_is_not_written_even_by_root(tmp_path, capsys):
    data = class_folder(tmp_path / "data", per_class=6)
    data.chmod(0o555)  # as shared data sets are; root's writes would succeed, but the mark says no
    try:
        api.plan(data, tmp_path / "run")
        assert not (data / SPLITS_FILE).exists() and cache_location(data).is_file()
        assert "read-only" in capsys.readouterr().err
    finally:
        data.chmod(0o755)
