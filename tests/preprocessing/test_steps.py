"""Preprocessing steps on synthetic cases whose right answer is known, the plan's choices, and the same steps
in training and in prediction."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.data import steps
from medsight.errors import MedsightError


def bias_phantom(shape=(24, 40, 40)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(biased image (1, *shape), mask of the outer tissue class, the bias-free phantom)."""
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    body = (z**2 + y**2 + x**2) < 0.8
    inner = body & (y**2 + x**2 < 0.2)
    phantom = np.where(inner, 200.0, np.where(body, 100.0, 0.0)).astype(np.float32)
    bias = np.exp(0.35 * (x + 0.6 * y - 0.4 * z))  # smooth, multiplicative, +-40% across the body
    outer = body & (y**2 + x**2 > 0.3)
    return (phantom * bias).astype(np.float32)[None], outer, phantom


def coefficient_of_variation(values: np.ndarray) -> float:
    return float(values.std() / values.mean())


def test_n4_flattens_a_smooth_bias_field():
    image, tissue, _ = bias_phantom()
    before = coefficient_of_variation(image[0][tissue])
    corrected = steps.n4_bias_field(image, (1.0, 1.0, 1.0), shrink_factor=2)
    after = coefficient_of_variation(corrected[0][tissue])
    assert before > 0.15  # measured: 0.21
    assert after < 0.25 * before  # measured: 0.008
    assert corrected.shape == image.shape and np.isfinite(corrected).all()


def test_n4_leaves_other_channels_alone():
    image, _, _ = bias_phantom((12, 20, 20))
    two = np.concatenate([image, image])
    out = steps.n4_bias_field(two, (1.0, 1.0, 1.0), channels=[1], shrink_factor=1, iterations=[10])
    np.testing.assert_array_equal(out[0], two[0])
    assert not np.allclose(out[1], two[1])


def noisy_squares(sigma: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    clean = np.zeros((64, 64), np.float32)
    clean[16:48, 16:48] = 1
    clean[24:40, 24:40] = 2
    noisy = clean + np.random.default_rng(0).normal(0, sigma, clean.shape).astype(np.float32)
    return noisy[None], clean


@pytest.mark.parametrize("method", ["curvature_flow", "nl_means"])
def test_denoising_brings_the_image_closer_to_the_clean_one(method):
    noisy, clean = noisy_squares()
    rmse_before = float(np.sqrt(((noisy[0] - clean) ** 2).mean()))
    out = steps.denoise(noisy, (1.0, 1.0), method=method)
    rmse_after = float(np.sqrt(((out[0] - clean) ** 2).mean()))
    assert rmse_after < 0.7 * rmse_before  # measured: 0.30 -> 0.13 (curvature flow), 0.07 (non-local means)


def test_noise_estimate_matches_the_added_noise():
    noisy, _ = noisy_squares(sigma=0.3)
    assert steps.noise_sigma(noisy[0]) == pytest.approx(0.3, rel=0.1)


def local_contrast(image: np.ndarray, size: int = 9) -> float:
    """Mean local standard deviation in size x size windows."""
    from scipy.ndimage import uniform_filter

    mean = uniform_filter(image, size)
    return float(np.sqrt(np.maximum(uniform_filter(image * image, size) - mean * mean, 0)).mean())


def low_contrast_image() -> np.ndarray:
    y, x = np.mgrid[0:128, 0:128] / 128.0
    texture = (np.sin(x * 60) * np.sin(y * 60) > 0) * 0.02  # faint checks on a broad ramp
    return (0.4 + 0.1 * x + texture).astype(np.float32)


def test_clahe_raises_local_contrast_in_the_images_own_range():
    image = low_contrast_image()[None]
    out = steps.clahe(image, (1.0, 1.0))
    assert local_contrast(out[0]) > 1.2 * local_contrast(image[0])  # measured: 0.0100 -> 0.0132
    assert out.min() >= image.min() - 1e-5 and out.max() <= image.max() + 1e-5


def test_clahe_on_colour_keeps_the_hue():
    grey = low_contrast_image()
    rgb = np.stack([grey, 0.5 * grey, 0.25 * grey])
    out = steps.clahe(rgb, (1.0, 1.0))
    assert local_contrast(out[0]) > 1.2 * local_contrast(rgb[0])
    lit = out[0] > 0.05
    np.testing.assert_allclose(out[1][lit] / out[0][lit], 0.5, atol=0.02)  # channel ratios (hue) unchanged


def test_crop_nonzero_finds_the_box_and_uncrop_restores_the_grid():
    image = np.zeros((2, 20, 30, 40), np.float32)
    image[0, 3:9, 5:25, 10:12] = 1.0
    image[1, 15, 4, 30] = -2.0  # any channel counts, negative values too
    box = steps.nonzero_box(image)
    assert box == (slice(3, 16), slice(4, 25), slice(10, 31))
    cropped = image[(slice(None), *box)]
    back = steps.uncrop(torch.from_numpy(cropped), box, image.shape[1:], fill=[0.0, 0.0])
    np.testing.assert_array_equal(back.numpy(), image)
    assert steps.nonzero_box(np.zeros((1, 4, 5))) == (slice(0, 4), slice(0, 5))


# plans ------------------------------------------------------------------------------------------------------------
def seg_plan(*entries: dict, **changes) -> dict:
    plan = {"task": "segmentation", "target_spacing": [1.0, 1.0], "normalization": [{"scheme": "zscore"}],
            "preprocessing": {"steps": [*entries, {"name": "resample"}, {"name": "normalize"}]}}
    return {**plan, **changes}


def test_segmentation_prediction_on_a_cropped_image_is_written_back_in_the_full_grid():
    from medsight.tasks.segmentation.infer import predict_label

    image = np.zeros((1, 40, 50), np.float32)
    image[0, 10:30, 5:45] = np.random.default_rng(0).uniform(1, 2, (20, 40))
    plan = seg_plan({"name": "crop_nonzero"}, num_classes=2, patch_size=[16, 16],
                    inference={"overlap": 0.25, "mirror_axes": [], "tta": False, "sw_batch_size": 2})
    seen = []

    def everything_is_foreground(x: torch.Tensor) -> torch.Tensor:
        seen.append(tuple(x.shape[2:]))
        return torch.stack([torch.zeros_like(x[:, 0]), torch.ones_like(x[:, 0])], 1)

    label, probs = predict_label([everything_is_foreground], image, (1.0, 1.0), plan, {})
    assert seen[0] == (16, 16) and label.shape == (40, 50) and probs.shape == (2, 40, 50)
    expected = np.zeros((40, 50), np.uint8)
    expected[10:30, 5:45] = 1  # foreground where the network saw the image, background where crop removed it
    np.testing.assert_array_equal(label, expected)


def test_segmentation_plan_chooses_steps_from_the_data():
    from medsight.tasks.segmentation.plan import preprocessing_steps

    shapes = np.array([[100, 100]] * 3)
    padded = preprocessing_steps(["T2", "ADC"], 2, shapes, np.array([[80, 80]] * 3))
    by_name = {s["name"]: s for s in padded}
    assert [s["name"] for s in padded] == ["crop_nonzero", "n4_bias_field", "denoise", "clahe", "resample", "normalize"]
    assert by_name["crop_nonzero"]["enabled"]  # 36% of the pixels are padding
    # offered on the MR channel (not ADC), but off until a benchmark shows that it helps
    assert not by_name["n4_bias_field"]["enabled"] and by_name["n4_bias_field"]["channels"] == [0]
    assert not by_name["denoise"]["enabled"] and not by_name["clahe"]["enabled"]
    full = {s["name"]: s for s in preprocessing_steps(["CT"], 2, shapes, shapes)}
    assert not full["crop_nonzero"]["enabled"] and not full["n4_bias_field"]["enabled"]
    volume = {s["name"]: s for s in preprocessing_steps(["CT"], 3, np.array([[200, 200, 200]]), np.array([[200] * 3]))}
    assert volume["crop_nonzero"]["enabled"]  # 3D always, as nnU-Net
    assert volume["n4_bias_field"]["shrink_factor"] == 5  # 200^3 shrunk to about 48^3


def test_a_plan_without_the_section_runs_the_task_steps():
    old = seg_plan()
    del old["preprocessing"]
    assert [s["name"] for s in steps.enabled_steps(old)] == ["resample", "normalize"]
    assert [s["name"] for s in steps.enabled_steps({"task": "classification"})] == ["resize", "normalize"]


@pytest.mark.parametrize("entry, problem", [
    ({"name": "sharpen"}, "unknown"),
    ({"name": "denoise", "sigma": 2}, "no option 'sigma'"),
    ({"name": "resize"}, "unknown"),  # a classification step in a segmentation plan
])
def test_bad_steps_fail_naming_the_plan(tmp_path, entry, problem):
    from medsight.run import RunFolder

    (tmp_path / "plan.json").write_text(json.dumps(seg_plan(entry)), encoding="utf-8")
    with pytest.raises(MedsightError, match=problem) as error:
        RunFolder(tmp_path).load_plan()
    assert error.value.path == str(tmp_path / "plan.json")


def test_crop_after_resampling_is_refused():
    plan = seg_plan()
    plan["preprocessing"]["steps"].append({"name": "crop_nonzero"})
    with pytest.raises(MedsightError, match="must come before 'resample'"):
        steps.enabled_steps(plan)


def test_classification_cannot_switch_off_resize():
    plan = {"task": "classification", "preprocessing": {"steps": [{"name": "resize", "enabled": False}]}}
    with pytest.raises(MedsightError, match="cannot be switched off"):
        steps.enabled_steps(plan)


# plan.json edited by hand, training and prediction ------------------------------------------------------------
@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    import medsight.data.volume_cache as volume_cache

    monkeypatch.setattr(volume_cache, "default_cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def padded_mri_folder(root: Path, cases: int = 4) -> Path:
    """2D nnU-Net raw cases on a zero border (so crop_nonzero has work), named MRI (so N4 is planned)."""
    import SimpleITK as sitk

    rng = np.random.default_rng(1)
    for k in range(cases):
        image, label = np.zeros((48, 48), np.uint8), np.zeros((48, 48), np.uint8)
        label[14:24, 14:30] = 1
        image[6:42, 8:40] = np.clip(60 + 80 * label[6:42, 8:40] + rng.normal(0, 15, (36, 32)), 1, 255)
        for folder, array in (("imagesTr", image), ("labelsTr", label)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            name = f"case_{k}_0000.png" if folder == "imagesTr" else f"case_{k}.png"
            sitk.WriteImage(sitk.GetImageFromArray(array), str(root / folder / name))
    meta = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "lesion": 1}, "numTraining": cases,
            "file_ending": ".png"}
    (root / "dataset.json").write_text(json.dumps(meta), encoding="utf-8")
    return root


def edit_steps(run: Path, **enabled: bool) -> dict:
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    for entry in plan["preprocessing"]["steps"]:
        entry["enabled"] = enabled.get(entry["name"], entry["enabled"])
    plan.update({"iterations_per_epoch": 2, "batch_size": 2, "validation_cases": 1})
    plan["inference"].update({"mirror_axes": [], "tta": False})
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    return plan


def test_hand_edited_steps_are_honoured_by_the_cache_and_by_predict(tmp_path, cache_root, monkeypatch):
    from medsight import api
    from medsight.tasks.segmentation import infer as segmentation_infer
    from medsight.data.volume_cache import PreprocessedCache, cache_key
    from medsight.data.volumes import prepare_case

    torch.set_num_threads(1)
    data = padded_mri_folder(tmp_path / "raw")
    run = tmp_path / "run"
    planned = api.plan(data, run)
    chosen = {s["name"]: s["enabled"] for s in planned["preprocessing"]["steps"]}
    assert chosen["crop_nonzero"] and not chosen["n4_bias_field"] and not chosen["denoise"]
    _, dataset = api.read_dataset(data)
    key_as_planned = cache_key(dataset, planned)
    plan = edit_steps(run, n4_bias_field=True, denoise=True)
    assert cache_key(dataset, plan) != key_as_planned  # other steps, other cache

    api.train(data, run, epochs=1, model="dynunet_tiny")
    cache = PreprocessedCache(dataset, plan)
    index = int(dataset.splits["train"][0])
    case, cached = dataset.load_case(index), cache.get(index)
    assert cached.image.shape[1:] == (36, 32)  # cropped to the non-zero box
    by_hand = prepare_case(case.image, case.spacing, plan, case.label)
    np.testing.assert_allclose(np.asarray(cached.image), by_hand.image.numpy(), atol=1e-6)
    without_denoise = edit_steps(tmp_path / "run", denoise=False)
    assert not np.allclose(prepare_case(case.image, case.spacing, without_denoise).image.numpy(), cached.image)
    edit_steps(run, denoise=True)

    # predict prepares the network's input exactly as training did, and writes the mask in the full grid
    inputs = []
    original = segmentation_infer.sliding_probabilities
    monkeypatch.setattr(segmentation_infer, "sliding_probabilities",
                        lambda models, image, *args, **kw: inputs.append(image) or original(models, image, *args, **kw))
    source = data / "imagesTr" / f"{case.case_id}_0000.png"
    records = api.predict([run], [source], tmp_path / "pred")
    np.testing.assert_allclose(inputs[0].numpy(), np.asarray(cached.image), atol=1e-5)
    from medsight.io.images import read_image

    assert read_image(Path(records[0]["output"])).array.shape[1:] == (48, 48)


def test_classification_training_and_prediction_run_the_same_clahe(tmp_path, tiny_npz, monkeypatch):
    from medsight import api
    from medsight.data.preprocess import prepare_image, prepare_many
    from medsight.inference.predictor import Predictor
    from medsight.io.classification import read_medmnist
    from medsight.tasks.classification import predict as classification_predict

    torch.set_num_threads(1)
    run = tmp_path / "run"
    api.plan(tiny_npz, run)
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    for entry in plan["preprocessing"]["steps"]:
        entry["enabled"] = entry["enabled"] or entry["name"] == "clahe"
    plan["epochs"] = 1
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(tiny_npz, run, epochs=1, model="lenet5")

    predictor = Predictor([run])
    assert [s["name"] for s in predictor.describe()["preprocessing"]] == ["clahe", "resize", "normalize"]
    dataset = read_medmnist(tiny_npz)
    index = int(dataset.splits["test"][0])
    training_view = prepare_many(dataset.load_case, np.array([index]), predictor.task.plan)[0]  # what training cached
    from PIL import Image

    picture = tmp_path / "case.png"
    Image.fromarray(dataset.load_case(index)[0].astype(np.uint8)).save(picture)
    batches = []
    original = classification_predict.ensemble_probabilities
    monkeypatch.setattr(classification_predict, "ensemble_probabilities",
                        lambda task, models, images: batches.append(images) or original(task, models, images))
    predictor.predict_files([picture], tmp_path / "pred")
    torch.testing.assert_close(batches[0][0], training_view, atol=1e-5, rtol=0)
    without = dict(plan, preprocessing={"steps": [{"name": "resize"}, {"name": "normalize"}]})
    assert not torch.allclose(prepare_image(dataset.load_case(index), without), training_view, atol=1e-3)


def test_classification_crop_feeds_the_network_only_the_non_zero_box():
    from medsight.data.preprocess import prepare_image, prepare_record

    image = np.zeros((1, 40, 60), np.float32)
    image[0, 5:35, 10:50] = np.random.default_rng(0).uniform(10, 200, (30, 40))
    plan = {"task": "classification", "in_channels": 3, "input_size": [16, 16],
            "normalization": {"clip": [0.0, 255.0], "mean": [100.0] * 3, "std": [50.0] * 3},
            "preprocessing": {"steps": [{"name": "crop_nonzero"}, {"name": "resize"}, {"name": "normalize"}]}}
    plain = dict(plan, preprocessing={"steps": [{"name": "resize"}, {"name": "normalize"}]})
    cropped = prepare_image(image, plan)
    assert cropped.shape == (3, 16, 16)  # grey into an RGB model, then cropped and resized
    torch.testing.assert_close(cropped, prepare_image(image[:, 5:35, 10:50], plain))
    assert prepare_record(image, plan).history == (steps.Cropped((slice(5, 35), slice(10, 50)), (40, 60)),
                                                   steps.Resized((30, 40), (16, 16)))
    assert prepare_record(image, plain).history == (steps.Resized((40, 60), (16, 16)),)


def test_the_record_puts_a_map_of_the_network_grid_back_on_the_source_grid():
    from medsight.data.preprocess import prepare_record, resize

    image = np.zeros((1, 40, 60), np.float32)
    image[0, 5:35, 10:50] = 7.0
    plan = {"task": "classification", "in_channels": 1, "input_size": [15, 20],
            "normalization": {"clip": [0.0, 255.0], "mean": [0.0], "std": [1.0]},
            "preprocessing": {"steps": [{"name": "crop_nonzero"}, {"name": "resize"}, {"name": "normalize"}]}}
    record = prepare_record(image, plan)
    assert record.image.shape == (1, 15, 20)
    back = record.invert(record.image, resize, fill=[-1.0])  # resize up to the 30 x 40 box, then uncrop
    expected = np.full((1, 40, 60), -1.0, np.float32)
    expected[0, 5:35, 10:50] = 7.0
    np.testing.assert_allclose(back.numpy(), expected, atol=1e-5)


def test_the_preprocessing_record_carries_the_plan_values_each_step_applies():
    from medsight.tasks.detection.task import DetectionTask

    norm = {"clip": [-1000.0, 400.0], "mean": [-300.0], "std": [250.0]}
    plan = {"task": "segmentation", "target_spacing": [2.0, 1.0, 1.0], "patch_size": [32, 64, 64], "in_channels": 1,
            "normalization": [{"scheme": "zscore"}],
            "preprocessing": {"steps": [{"name": "crop_nonzero", "enabled": True, "reason": "r"},
                                        {"name": "clahe", "enabled": False, "clip_limit": 0.01},
                                        {"name": "resample", "enabled": True}, {"name": "normalize", "enabled": True}]}}
    assert steps.preprocessing_record(plan) == [
        {"name": "crop_nonzero"}, {"name": "resample", "target_spacing": [2.0, 1.0, 1.0]},
        {"name": "normalize", "normalization": [{"scheme": "zscore"}]}]
    assert steps.network_input(plan) == {"channels": 1, "size": [32, 64, 64], "fed": "windows"}
    # a world-unit detection plan lists normalize and scale, but its scans go through the volume cache's steps
    world = {"task": "detection", "target_spacing": [1.25, 0.7, 0.7], "normalization": norm, "scale": 1.0,
             "in_channels": 1, "patch_size": [48, 96, 96]}
    task = DetectionTask(world, {})
    assert steps.preprocessing_record(task.preprocessing_plan) == [
        {"name": "resample", "target_spacing": [1.25, 0.7, 0.7]},
        {"name": "normalize", "normalization": [{"scheme": "ct", "clip": [-1000.0, 400.0], "mean": -300.0, "std": 250.0}]}]
    flat = dict(world)
    del flat["target_spacing"]
    assert [s["name"] for s in steps.preprocessing_record(DetectionTask(flat, {}).preprocessing_plan)] == ["normalize", "scale"]
