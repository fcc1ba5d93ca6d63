"""--workers: segmentation and detection batches made in DataLoader worker processes are the ones made in process."""

from __future__ import annotations

import numpy as np
import torch

from medsight.config import TrainConfig
from medsight.data.workers import WorkerBatches, in_workers


def configured(data, task_name: str, tmp_path, **plan_changes):
    from medsight.api import read_dataset

    task_cls, dataset = read_dataset(data)
    plan = {**task_cls.make_plan(dataset), **plan_changes}
    task = task_cls(plan, dataset.info())
    task.configure(TrainConfig(task=task_name, data=str(data), model=plan["model"], batch_size=2,
                               extra={"cache_dir": str(tmp_path / "cache")}), dataset)
    return task, dataset


def same_batches(first: list[dict], second: list[dict]) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second):
        assert a.keys() == b.keys()
        for key in a:
            values = a[key] if isinstance(a[key], list) else [a[key]]
            others = b[key] if isinstance(b[key], list) else [b[key]]
            for x, y in zip(values, others):
                assert torch.equal(x, y), key


def test_segmentation_batches_in_workers_are_the_batches_in_process(tmp_path, one_thread):
    from medsight.synthetic.segmentation import make_segmentation_dataset

    data = make_segmentation_dataset(tmp_path / "shapes", spatial_dims=2, num_cases=4, seed=0, size=32)
    task, dataset = configured(data, "segmentation", tmp_path, iterations_per_epoch=5)
    batches = task.train_batches(dataset, dataset.splits["train"], 1, 0, 0, 1)
    in_process = list(batches)
    workers = in_workers(batches, 2, torch.device("cpu"))
    assert isinstance(workers, WorkerBatches) and len(workers) == 5
    same_batches(in_process, list(workers))
    other_epoch = list(task.train_batches(dataset, dataset.splits["train"], 2, 0, 0, 1))
    assert not torch.equal(other_epoch[0]["image"], in_process[0]["image"])
    other_rank = list(task.train_batches(dataset, dataset.splits["train"], 1, 0, 1, 2))
    assert not np.allclose(other_rank[0]["image"][0].numpy(), in_process[0]["image"][0].numpy())


def test_detection_batches_in_workers_are_the_batches_in_process(tmp_path, one_thread):
    from medsight.synthetic.detection import make_blobs_2d

    data = make_blobs_2d(tmp_path / "blobs", seed=0, num_images=6, size=48)
    task, dataset = configured(data, "detection", tmp_path, iterations_per_epoch=3)
    batches = task.train_batches(dataset, dataset.splits["train"], 0, 0, 0, 1)
    same_batches(list(batches), list(in_workers(batches, 2, torch.device("cpu"))))


def test_classification_batches_stay_in_process(tiny_npz, tmp_path):
    task, dataset = configured(tiny_npz, "classification", tmp_path)
    batches = task.train_batches(dataset, dataset.splits["train"], 0, 0, 0, 1)
    assert in_workers(batches, 2, torch.device("cpu")) is batches
