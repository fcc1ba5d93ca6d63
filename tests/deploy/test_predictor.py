"""The predictor on tiny trained runs: CSV contents, ensembles, inputs, errors, 3D volumes, the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from medsight.errors import MedsightError


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def direct_probabilities(run: Path, images: np.ndarray) -> np.ndarray:
    """Probabilities computed without the predictor: the run's model on the plan's preprocessing."""
    from medsight.api import load_run
    from medsight.data.preprocess import prepare_image

    _, task, model = load_run(run)
    batch = torch.stack([prepare_image(image[None], task.plan) for image in images])
    with torch.no_grad():
        return torch.softmax(model(batch), 1).numpy()


def test_csv_holds_classes_probabilities_and_operating_point(trained_run, test_pngs, deploy_data, tmp_path):
    from medsight import api
    from medsight.metrics.operating_point import apply_operating_point

    from .conftest import run_classes

    folder, _ = test_pngs
    negative, positive = run_classes(trained_run)
    records = api.predict([trained_run], [folder], tmp_path / "out")
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert [Path(r["file"]).name for r in rows] == sorted(p.name for p in folder.glob("*.png"))
    assert list(rows[0]) == ["file", "class", f"prob_{negative}", f"prob_{positive}", "operating_point", "error"]
    probs = np.array([[float(r[f"prob_{negative}"]), float(r[f"prob_{positive}"])] for r in rows])
    expected = direct_probabilities(trained_run, np.load(deploy_data)["test_images"][:8])
    np.testing.assert_allclose(probs, expected, atol=2e-6)
    point = json.loads((trained_run / "state.json").read_text(encoding="utf-8"))["operating_point"]
    assert "threshold" in point  # balanced_accuracy on a binary task
    decided = apply_operating_point(probs, point)
    assert [r["class"] for r in rows] == [(negative, positive)[k] for k in decided]
    assert all(r["operating_point"] == f"balanced_accuracy: p({positive}) >= {point['threshold']:.4g}" for r in rows)
    for record in records:
        overlay = Path(record["images"]["overlay"][0])
        assert overlay.is_file() and overlay.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "gradcam" not in record["images"]  # only with explain


def test_ensemble_averages_member_probabilities(trained_run, second_run, test_pngs, tmp_path):
    from medsight import api

    folder, _ = test_pngs
    single = [api.predict([run], [folder], tmp_path / run.name) for run in (trained_run, second_run)]
    both = api.predict([trained_run, second_run], [folder], tmp_path / "ensemble")
    for a, b, mean in zip(*single, both):
        for name in mean["probabilities"]:
            assert mean["probabilities"][name] == pytest.approx((a["probabilities"][name] + b["probabilities"][name]) / 2, abs=1e-6)
    thresholds = [json.loads((r / "state.json").read_text(encoding="utf-8"))["operating_point"]["threshold"] for r in (trained_run, second_run)]
    from .conftest import run_classes

    rows = read_csv(tmp_path / "ensemble" / "predictions.csv")
    positive = run_classes(trained_run)[1]
    assert rows[0]["operating_point"] == f"balanced_accuracy: p({positive}) >= {np.mean(thresholds):.4g}"
    assert not (a["probabilities"] == b["probabilities"])  # the members really differ


def test_ensemble_member_with_other_normalisation_gets_its_own_inputs(trained_run, second_run, test_pngs, tmp_path):
    from medsight.inference.predictor import Predictor

    other = tmp_path / "run_b_renormed"
    shutil.copytree(second_run, other)
    plan = json.loads((other / "plan.json").read_text(encoding="utf-8"))
    plan["normalization"]["mean"] = [v * 0.8 for v in plan["normalization"]["mean"]]
    plan["normalization"]["std"] = [v * 1.3 for v in plan["normalization"]["std"]]
    (other / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    folder, _ = test_pngs
    alone = Predictor([other]).predict_files([folder], tmp_path / "alone")
    first = Predictor([trained_run]).predict_files([folder], tmp_path / "first")
    both = Predictor([trained_run, other]).predict_files([folder], tmp_path / "both")
    for a, b, mean in zip(first, alone, both):
        for name in mean["probabilities"]:
            assert mean["probabilities"][name] == pytest.approx((a["probabilities"][name] + b["probabilities"][name]) / 2, abs=1e-5)


def test_runs_that_disagree_cannot_be_ensembled(trained_run, volume_run, tmp_path):
    from medsight.inference.predictor import Predictor

    with pytest.raises(MedsightError, match="spatial_dims|classes|plan.json differs"):
        Predictor([trained_run, volume_run])
    renamed = tmp_path / "renamed"
    shutil.copytree(trained_run, renamed)
    info = json.loads((renamed / "dataset.json").read_text(encoding="utf-8"))
    info["classes"] = ["healthy", "sick"]
    (renamed / "dataset.json").write_text(json.dumps(info), encoding="utf-8")
    with pytest.raises(MedsightError, match="classes"):
        Predictor([trained_run, renamed])


def test_combined_operating_points():
    from medsight.inference.ensemble import combine_operating_points

    assert combine_operating_points([{"rule": "youden", "threshold": 0.2}, {"rule": "youden", "threshold": 0.4}])["threshold"] == pytest.approx(0.3)
    mixed = combine_operating_points([{"rule": "youden", "threshold": 0.2}, {"rule": "balanced_accuracy", "threshold": 0.4}])
    assert mixed["rule"] == "argmax" and "different rules" in mixed["note"]
    offsets = combine_operating_points([{"rule": "balanced_accuracy", "log_offsets": [0, 1, -1]},
                                        {"rule": "balanced_accuracy", "log_offsets": [0, 3, -3]}])
    assert offsets["log_offsets"] == [0, 2, -2]
    assert combine_operating_points([None, None]) == {"rule": "argmax"}


def test_input_discovery_files_folders_and_dicom_series(tmp_path):
    from PIL import Image

    from medsight.io.inputs import discover_inputs, output_names

    (tmp_path / "a" / "deeper").mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "x.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "deeper" / "x.png")
    (tmp_path / "a" / "notes.txt").write_text("not an image", encoding="utf-8")
    series = tmp_path / "a" / "series"
    series.mkdir()
    dicom = Path(__import__("pydicom.data", fromlist=["x"]).get_testdata_file("CT_small.dcm"))
    for i in range(2):
        shutil.copy(dicom, series / f"slice{i}")  # DICOM files without suffix, found by their preamble
    found = discover_inputs([tmp_path / "a"])
    assert [p.relative_to(tmp_path / "a").as_posix() for p in found] == ["x.png", "deeper/x.png", "series"]
    assert output_names(found + found[:1]) == ["x", "x_2", "series", "x_3"]
    with pytest.raises(MedsightError, match="no such file"):
        discover_inputs([tmp_path / "missing.png"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(MedsightError, match="holds no image files"):
        discover_inputs([tmp_path / "empty"])


def test_bad_files_are_skipped_in_a_batch_and_fail_alone(trained_run, test_pngs, tmp_path, capsys):
    from medsight import api

    folder = tmp_path / "mixed"
    shutil.copytree(test_pngs[0], folder)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    records = api.predict([trained_run], [folder], tmp_path / "out")
    assert len(records) == 8
    rows = read_csv(tmp_path / "out" / "predictions.csv")
    assert rows[-1]["file"].endswith("broken.png") and "not a readable PNG" in rows[-1]["error"]
    assert "skipped" in capsys.readouterr().err
    with pytest.raises(MedsightError, match="broken.png"):
        api.predict([trained_run], [folder / "broken.png"], tmp_path / "alone")


def test_volume_prediction_with_explanations(volume_run, tmp_path):
    from medsight import api

    from .conftest import write_volume

    rng = np.random.default_rng(0)
    nifti = write_volume(tmp_path / "case.nii.gz", (rng.random((12, 20, 18)) * 255).astype(np.uint8))
    records = api.predict([volume_run], [nifti], tmp_path / "out", explain=True)
    record = records[0]
    assert record["name"] == "case"
    for method in ("gradcam", "gradcampp"):
        heat = np.load(record["arrays"][method])
        assert heat.shape == (12, 20, 18) and heat.min() >= 0 and heat.max() <= 1 + 1e-6
        assert 1 <= len(record["images"][method]) <= 2  # middle and most activated slices
        assert all(Path(p).is_file() for p in record["images"][method])
    from PIL import Image

    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "flat.png")
    with pytest.raises(MedsightError, match="flat.png: is 2D but this model takes 3D images"):
        api.predict([volume_run], [tmp_path / "flat.png"], tmp_path / "flat")


def test_cli_predict(trained_run, test_pngs, tmp_path, capsys):
    from medsight.cli import main

    assert main(["predict", str(trained_run), str(test_pngs[0]), "--out", str(tmp_path / "cli"), "--explain"]) == 0
    captured = capsys.readouterr()
    assert "predicted 8 input(s)" in captured.out
    assert "predict: 8/8," in captured.err  # the progress line ends with the total
    assert len(list((tmp_path / "cli" / "explain").glob("*_gradcampp.npy"))) == 8
    assert main(["predict", str(trained_run), str(tmp_path / "nothing.png"), "--out", str(tmp_path / "x")]) == 2
    assert "nothing.png: no such file or directory" in capsys.readouterr().err


def test_progress_line():
    from medsight.progress import Progress, progress

    lines: list[str] = []
    list(progress(range(3), 3, "predict", every_seconds=0, echo=lines.append))
    assert [line.split(",")[0] for line in lines] == ["predict: 1/3", "predict: 2/3", "predict: 3/3"]
    assert lines[-1].endswith("~0 s left")
    quiet: list[str] = []
    Progress(1, echo=quiet.append).advance()
    assert quiet == []


def test_multilabel_run_decides_each_label(tmp_path):
    from medsight import api
    from medsight.synthetic.classification import make_images

    rng = np.random.default_rng(0)
    arrays = {}
    for split, count in (("train", 48), ("val", 16), ("test", 8)):
        images, _ = make_images(count, 2, 28, rng, 0.5)
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = (rng.random((count, 3)) < 0.5).astype(np.int64)
    data = tmp_path / "multi.npz"
    np.savez(data, **arrays)
    api.train(data, tmp_path / "run", model="lenet5", epochs=1)
    folder = tmp_path / "pngs"
    folder.mkdir()
    from PIL import Image

    for i, image in enumerate(arrays["test_images"]):
        Image.fromarray(image).save(folder / f"m{i}.png")
    records = api.predict([tmp_path / "run"], [folder], tmp_path / "out")
    point = json.loads((tmp_path / "run" / "state.json").read_text(encoding="utf-8"))["operating_point"]
    thresholds = point.get("thresholds") or [point.get("threshold", 0.5)] * 3
    for record in records:
        chosen = [name for (name, p), t in zip(record["probabilities"].items(), thresholds) if p >= t]
        assert record["class"] == ";".join(chosen)
        assert record["operating_point"].count("p(") == 3


def test_every_input_format_gives_the_same_answer(trained_run, deploy_data, tmp_path):
    import SimpleITK as sitk
    import tifffile
    from PIL import Image

    from medsight import api

    picture = np.load(deploy_data)["test_images"][0]
    folder = tmp_path / "formats"
    folder.mkdir()
    Image.fromarray(picture).save(folder / "case.png")
    Image.fromarray(picture).save(folder / "case.bmp")
    Image.fromarray(picture).save(folder / "case.jpg", quality=100)
    tifffile.imwrite(folder / "case.tif", picture)
    for suffix in (".nrrd", ".mha", ".nii.gz"):
        sitk.WriteImage(sitk.GetImageFromArray(picture), str(folder / f"case{suffix}"))
    records = {Path(r["file"]).name: r for r in api.predict([trained_run], [folder], tmp_path / "out")}
    assert sorted(records) == sorted(p.name for p in folder.iterdir())
    reference = records["case.png"]["probabilities"]
    for name, record in records.items():
        tolerance = 2e-2 if name.endswith(".jpg") else 1e-6  # JPEG is lossy even at quality 100
        for label, p in reference.items():
            assert record["probabilities"][label] == pytest.approx(p, abs=tolerance), name
    assert len({r["name"] for r in records.values()}) == len(records)  # case, case_2, ... never overwrite
