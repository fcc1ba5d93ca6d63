"""Fixtures for deployment tests: two tiny trained classification runs and a few PNG inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="session")
def deploy_data(tmp_path_factory) -> Path:
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("deploy-data") / "lesions.npz", n_train=96, n_val=32,
                                   n_test=24, size=28, lesion_fraction=0.4, seed=5)


def _train(data: Path, out: Path, seed: int) -> Path:
    from medsight import api

    api.train(data, out, model="lenet5", epochs=1, seed=seed)
    return out


@pytest.fixture(scope="session")
def trained_run(deploy_data, tmp_path_factory) -> Path:
    """A lenet5 run trained for one epoch (seconds on CPU)."""
    return _train(deploy_data, tmp_path_factory.mktemp("runs") / "run_a", seed=0)


@pytest.fixture(scope="session")
def second_run(deploy_data, tmp_path_factory) -> Path:
    return _train(deploy_data, tmp_path_factory.mktemp("runs") / "run_b", seed=1)


@pytest.fixture(scope="session")
def exported_run(trained_run) -> tuple[Path, dict]:
    from medsight.export.onnx import export_run

    return trained_run, export_run(trained_run)


@pytest.fixture(scope="session")
def test_pngs(deploy_data, tmp_path_factory) -> tuple[Path, np.ndarray]:
    """The test split as PNG files in a folder, with their labels."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pngs")
    archive = np.load(deploy_data)
    for i, image in enumerate(archive["test_images"][:8]):
        Image.fromarray(image).save(folder / f"case_{i:02d}.png")
    return folder, archive["test_labels"][:8, 0]


@pytest.fixture(scope="session")
def volume_run(tmp_path_factory) -> Path:
    """A 3D lenet5 run on 16^3 synthetic volumes, trained for one epoch."""
    from medsight.synthetic.classification import make_classification_npz

    data = make_classification_npz(tmp_path_factory.mktemp("deploy-3d") / "volumes.npz", spatial_dims=3, size=16,
                                   n_train=32, n_val=16, n_test=8, lesion_fraction=0.5, seed=7)
    return _train(data, tmp_path_factory.mktemp("runs3d") / "run_3d", seed=0)


@pytest.fixture(scope="session")
def segmentation_run(tmp_path_factory) -> tuple[Path, Path]:
    """A dynunet_tiny run on six synthetic 16^3 volumes, one short epoch (seconds)."""
    import json

    import medsight.data.volume_cache as volume_cache
    from medsight import api
    from medsight.synthetic.segmentation import make_segmentation_dataset

    root = tmp_path_factory.mktemp("segmentation")
    original_cache = volume_cache.default_cache_root
    volume_cache.default_cache_root = lambda: root / "cache"  # keep the preprocessed cache in tmp
    try:
        data = make_segmentation_dataset(root / "shapes", spatial_dims=3, num_cases=6, seed=0, size=16)
        run = root / "run"
        api.plan(data, run)
        plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
        plan.update({"iterations_per_epoch": 1, "batch_size": 2, "validation_cases": 2})
        plan["inference"]["tta"] = False
        (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
        api.train(data, run, epochs=1, model="dynunet_tiny")
        yield run, data
    finally:
        volume_cache.default_cache_root = original_cache


def run_classes(run: Path) -> list[str]:
    """The class names a run recorded in its dataset.json."""
    import json

    return list(json.loads((Path(run) / "dataset.json").read_text(encoding="utf-8"))["classes"])


def write_volume(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 2.0)) -> Path:
    """A (Z, Y, X) array as NIfTI/NRRD/MHA with a spacing, via SimpleITK."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path))
    return path


def shared_dicom_series() -> Path:
    """A real MR DICOM series from the shared data (the test skips where it is absent)."""
    import os

    shared = Path(os.environ.get("MEDSIGHT_SHARED", Path(__file__).resolve().parents[3] / "shared"))  # beside the repository
    root = shared / "data" / "hippocampus_dicom"
    series = sorted(p.parent for p in root.glob("*/*/*.dcm")) if root.is_dir() else []
    if not series:
        pytest.skip(f"{root} is not present on this machine")
    return series[0]
