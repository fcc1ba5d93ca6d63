"""plan for a device: CPU budgets unchanged, on a GPU nnU-Net-sized patch and batch from its memory (faked here)."""

from __future__ import annotations

import numpy as np

from medsight.tasks.plan_target import GPU_MEMORY_SHARE, PlanTarget, gpu_budgets

GIB = 2**30


def test_gpu_budgets_scale_the_batch_with_memory_and_cap_the_patch():
    reference = round(8 * GIB / GPU_MEMORY_SHARE)  # 8 GiB usable: nnU-Net's reference budgets exactly
    assert gpu_budgets(3, reference) == (128**3, 2 * 128**3, (2, 64))
    assert gpu_budgets(2, reference)[:2] == (512**2, 12 * 512**2)
    patch, batch, _ = gpu_budgets(3, 2 * reference)
    assert (patch, batch) == (128**3, 4 * 128**3)  # more memory: a bigger batch, not a bigger patch
    patch, batch, _ = gpu_budgets(3, reference // 2)
    assert (patch, batch) == (128**3 // 2, 128**3)  # less memory: both shrink


def test_the_plan_records_its_device_and_sizes_for_it(make_folder, tmp_path):
    from medsight.api import read_dataset
    from medsight.tasks.segmentation.task import SegmentationTask

    data = make_folder(tmp_path / "big2d", cases=2, shape=(640, 640), ending=".png")
    _, dataset = read_dataset(data)
    cpu = SegmentationTask.make_plan(dataset)
    small = SegmentationTask.make_plan(dataset, PlanTarget("cuda", 8 * GIB, "fake 8 GiB GPU"))
    large = SegmentationTask.make_plan(dataset, PlanTarget("cuda", 80 * GIB, "fake 80 GiB GPU"))
    assert cpu["planned_for"] == {"device": "cpu", "name": "cpu"}
    assert large["planned_for"] == {"device": "cuda", "name": "fake 80 GiB GPU", "memory_gib": 80.0}
    # the patch grows to the GPU budget (rounded by the U-Net's topology to a multiple of its strides)
    assert np.prod(cpu["patch_size"]) <= 256 * 256 < np.prod(small["patch_size"]) <= np.prod(large["patch_size"])
    assert np.prod(large["patch_size"]) <= 640 * 640
    patch, batch_voxels, (low, high) = gpu_budgets(2, 80 * GIB)
    assert large["batch_size"] == int(np.clip(batch_voxels // np.prod(large["patch_size"]), low, high)) > small["batch_size"]
