"""Prepared detection cases on disk: the same pixels and boxes as preparing in memory, read memory-mapped."""

from __future__ import annotations

import numpy as np
import torch

from medsight.data.steps import Prepared
from medsight.io.detection import read_detection
from medsight.synthetic.detection import make_blobs_2d, make_spheres_3d
from medsight.tasks.detection.cache import PreparedCache
from medsight.tasks.detection.data import EpochBatches, prepare_record
from medsight.tasks.detection.plan import make_detection_plan
from medsight.tasks.detection.task import DetectionTask
from medsight.tasks.detection.tiling import read_case_near_scale


class Config:
    def __init__(self, root):
        self.batch_size, self.extra = 2, {"cache_dir": str(root)}


def test_2d_cases_are_cached_scaled_and_read_memory_mapped(tmp_path):
    data = make_blobs_2d(tmp_path / "blobs", seed=0, num_images=6, size=48)
    dataset = read_detection(data, "coco")
    plan = make_detection_plan(dataset)
    plan["scale"] = 0.5  # the grid changes, so the boxes must follow it
    cache = PreparedCache(dataset, plan, tmp_path / "cache")
    cache.ensure(range(len(dataset.case_ids)))
    assert len(list(cache.folder.glob("*_image.npy"))) == len(dataset.case_ids)
    for index in range(len(dataset.case_ids)):
        image, shape = read_case_near_scale(dataset, index, plan)  # a picture twice the grid: decoded at the plan's scale
        record = prepare_record(image, plan, shape)
        case = cache.case(index)
        assert isinstance(case.image, np.memmap) and case.image.dtype == np.float16
        assert case.image.shape[1:] == (24, 24)
        np.testing.assert_array_equal(np.asarray(case.image), record.image.half().numpy())
        np.testing.assert_allclose(case.boxes, dataset.boxes[index] * 0.5)
        found = np.array([[2.0, 4.0, 10.0, 12.0]])  # a box found on the prepared grid goes back to the image's
        np.testing.assert_allclose(Prepared(None, (), history=case.steps).invert_boxes(found), found * 2)
    # the same plan finds the files it wrote; an edited plan is another cache
    assert PreparedCache(dataset, plan, tmp_path / "cache").folder == cache.folder
    assert PreparedCache(dataset, {**plan, "scale": 0.75}, tmp_path / "cache").folder != cache.folder
    task = DetectionTask(plan, {"classes": list(dataset.classes)})
    task.configure(Config(tmp_path / "cache"), dataset)
    assert all(isinstance(c.image, np.memmap) for c in task.train_cases)  # the task holds no image


def test_3d_training_batches_come_from_the_files(tmp_path):
    data = make_spheres_3d(tmp_path / "spheres", seed=0, num_cases=6, size=24, radius=(2.0, 4.0), per_case=(1, 2))
    dataset = read_detection(data, "nndetection")
    plan = make_detection_plan(dataset)
    plan["patch_size"] = [16, 16, 16]
    task = DetectionTask(plan, {"classes": list(dataset.classes)})
    task.configure(Config(tmp_path / "cache"), dataset)
    assert all(isinstance(c.image, np.memmap) for c in task.train_cases)
    batch = EpochBatches(task.train_cases, plan, 2, 1, seed=0).batch(0)
    assert batch["image"].shape == (2, 1, 16, 16, 16) and batch["image"].dtype == torch.float32


def test_slab_resampling_equals_trilinear_interpolation(tmp_path):
    import torch.nn.functional as F

    from medsight.data.slabs import write_resampled

    rng = np.random.default_rng(0)
    volume = rng.integers(-1000, 400, size=(2, 23, 17, 19)).astype(np.int16)
    for shape in [(9, 30, 11), (40, 17, 19), (23, 8, 25)]:  # down and up along z; in plane only
        write_resampled(volume, shape, tmp_path / "out.npy", lambda planes, channel: planes * (channel + 1))
        got = np.load(tmp_path / "out.npy", mmap_mode="r")
        expected = F.interpolate(torch.from_numpy(volume.astype(np.float32))[None], size=shape, mode="trilinear",
                                 align_corners=False)[0].numpy() * np.array([1.0, 2.0])[:, None, None, None]
        assert got.shape == expected.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-2)  # float32 rounding on values up to 2800


def test_world_cache_streamed_equals_the_volume_cache_in_memory(tmp_path):
    from medsight.io.luna16 import read_luna16
    from medsight.synthetic.luna16 import make_luna16
    from medsight.tasks.detection.world import WorldCases, cache_plan, prepare_world

    data = make_luna16(tmp_path / "luna", seed=0, num_scans=2, shape=(12, 30, 34), spacing_xyz=(1.2, 1.1, 2.9), tubes=2)
    dataset = read_luna16(data)
    plan = make_detection_plan(dataset)
    plan["target_spacing"] = [1.9, 0.8, 1.5]  # up in plane, down along z
    cases = WorldCases(dataset, plan, tmp_path / "cache")
    for index in range(2):
        case = cases.case(index)
        expected, ratio = prepare_world(dataset.load_case(index), dataset.geometries[index].array_spacing, plan)
        assert isinstance(case.image, np.memmap)
        np.testing.assert_allclose(case.image, expected.numpy(), rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(cases.ratio(index), ratio)
    assert cache_plan(plan)["normalization"][0]["scheme"] == "ct"
