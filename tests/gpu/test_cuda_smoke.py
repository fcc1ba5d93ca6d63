"""On a CUDA GPU, per task and dimension: a few training steps with mixed precision, predict and the export
check, all on the GPU. Skipped where PyTorch sees no CUDA device.

    python -m pytest -q tests/gpu
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to PyTorch")


def classification_data(root: Path, dims: int) -> tuple[Path, dict, list[str]]:
    from medsight.synthetic.classification import make_classification_npz

    data = make_classification_npz(root / "lesions.npz", spatial_dims=dims, size=28 if dims == 2 else 16, n_train=64,
                                   n_val=16, n_test=8, lesion_fraction=0.4, seed=0)
    return data, {}, ["--model", "resnet18_half", "--balance", "weights"]


def segmentation_data(root: Path, dims: int) -> tuple[Path, dict, list[str]]:
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(root / "shapes", spatial_dims=dims, num_cases=6, seed=0, size=32 if dims == 2 else 16)
    return data, {"iterations_per_epoch": 4, "validation_cases": 2}, ["--model", "dynunet_tiny"]


def detection_data(root: Path, dims: int) -> tuple[Path, dict, list[str]]:
    from medsight.synthetic.detection import make_blobs_2d, make_spheres_3d

    data = make_blobs_2d(root / "blobs", seed=0, num_images=10, size=48) if dims == 2 else \
        make_spheres_3d(root / "spheres", seed=0, num_cases=8, size=32)
    return data, {"iterations_per_epoch": 4}, ["--model", "retinanet", "--batch-size", "2"]


def inputs_of(data: Path, task: str) -> list[Path]:
    if task == "classification":
        import numpy as np
        from PIL import Image

        import SimpleITK as sitk

        archive = np.load(data)
        image = archive["test_images"][0]
        target = data.parent / ("input.png" if image.ndim == 2 else "input.nii.gz")
        if image.ndim == 2:
            Image.fromarray(image).save(target)
        else:
            sitk.WriteImage(sitk.GetImageFromArray(image), str(target))
        return [target]
    folder = data / "imagesTr" if (data / "imagesTr").is_dir() else data
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".png", ".gz", ".nii", ".jpg"))[:2]


@pytest.mark.parametrize("amp", ["auto", "fp16"])
@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("make_data", [classification_data, segmentation_data, detection_data],
                         ids=["classification", "segmentation", "detection"])
def test_train_predict_export_on_the_gpu(make_data, dims, amp, tmp_path):
    from medsight import api
    from medsight.export.onnx import export_run
    from medsight.training.checkpoint import load_checkpoint

    data, plan_changes, options = make_data(tmp_path, dims)
    run = tmp_path / "run"
    plan = api.plan(data, run, device="cuda")
    assert plan["planned_for"]["device"] == "cuda"
    plan.update(plan_changes)
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    option = dict(zip(options[::2], options[1::2]))
    summary = api.train(data, run, model=option["--model"], epochs=2, device="cuda", amp=amp,
                        balance=option.get("--balance", "none"),
                        batch_size=int(option["--batch-size"]) if "--batch-size" in option else None)
    assert summary["epochs"] == 2
    checkpoint = load_checkpoint(run / "checkpoint.pt")
    assert ("grad_scaler" in checkpoint) == (amp == "fp16" or not torch.cuda.is_bf16_supported())
    api.train(None, run, resume=True, device="cuda")  # nothing left: finishes from the checkpoint

    task = plan["task"]
    records = api.predict([run], inputs_of(data, task), tmp_path / "predicted", device="cuda")
    assert records
    result = export_run(run, device="cuda")
    assert result["passed"], result["checks"]
