"""The memory-mapped input cache of file-based classification sets: same values as preparing in memory,
written once per key, resumed, refreshed when a file or the plan changes, and read a batch at a time."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medsight.data import input_cache
from medsight.data.input_cache import InputCache, cache_key
from medsight.data.preprocess import prepare_image
from medsight.io.imagefolder import read_classification
from medsight.tasks.classification.task import ClassificationTask


@pytest.fixture
def folder(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    for name in ("lesion", "none"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for k in range(6):
            pixels = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{k}.png")
    return tmp_path / "data"


def counting(dataset):
    loads = []

    def load(index):
        loads.append(index)
        return dataset.load_case(index)

    return load, loads


def test_rows_equal_the_in_memory_preparation(folder, tmp_path):
    dataset = read_classification(folder, "imagefolder")
    plan = ClassificationTask.make_plan(dataset)
    plan["input_size"] = [16, 16]
    cache = InputCache(dataset.sources, dataset.load_case, plan, tmp_path / "cache", echo=lambda line: None)
    rows = cache.rows(np.array([3, 0, 7]))
    assert rows.shape == (3, 3, 16, 16)
    expected = torch.stack([prepare_image(dataset.load_case(i), plan) for i in (3, 0, 7)])
    torch.testing.assert_close(rows[np.arange(3)], expected)
    torch.testing.assert_close(rows[torch.tensor([2])][0], expected[2])
    torch.testing.assert_close(rows[1:3], expected[1:3])


def test_written_once_resumed_and_refreshed_when_a_file_changes(folder, tmp_path):
    dataset = read_classification(folder, "imagefolder")
    plan = ClassificationTask.make_plan(dataset)
    lines = []
    load, loads = counting(dataset)
    InputCache(dataset.sources, load, plan, tmp_path / "cache", echo=lines.append).ensure([0, 1, 2])
    assert sorted(loads) == [0, 1, 2] and lines[0].startswith("caching 3 image(s)") and "cached 3/3" in lines[-1]
    loads.clear()
    InputCache(dataset.sources, load, plan, tmp_path / "cache", echo=lines.append).ensure(range(len(dataset)))
    assert sorted(loads) == list(range(3, len(dataset)))  # only the rows not written before
    loads.clear()
    InputCache(dataset.sources, load, plan, tmp_path / "cache", echo=lines.append).ensure(range(len(dataset)))
    assert loads == []
    before = cache_key(dataset.sources, plan)
    stat = os.stat(dataset.sources[0])
    os.utime(dataset.sources[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache_key(dataset.sources, plan) != before
    edited = {**plan, "normalization": {**plan["normalization"], "mean": [0.0, 0.0, 0.0]}}
    assert cache_key(dataset.sources, edited) != cache_key(dataset.sources, plan)


def test_pages_are_dropped_as_reads_add_up(folder, tmp_path, monkeypatch):
    monkeypatch.setattr(input_cache, "DROP_PAGES_BYTES", 1)
    dataset = read_classification(folder, "imagefolder")
    plan = ClassificationTask.make_plan(dataset)
    rows = InputCache(dataset.sources, dataset.load_case, plan, tmp_path / "cache", echo=lambda line: None).rows(
        np.arange(len(dataset)))
    first = rows[np.array([4])].clone()
    rows[np.arange(len(dataset))]  # drops the pages; the next read comes back from the file
    torch.testing.assert_close(rows[np.array([4])], first)
    assert rows.reader._read == 0


def test_training_on_a_file_folder_reads_the_cache(folder, tmp_path, capsys):
    from medsight.cli import main

    assert main(["train", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1", "--model", "lenet5"]) == 0
    assert "caching" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "run"), "--split", "test"]) == 0
    assert "caching" not in capsys.readouterr().err  # the test rows were written while training


def test_a_cache_larger_than_the_free_disk_is_one_line(folder, tmp_path, monkeypatch):
    from collections import namedtuple

    from medsight.errors import MedsightError

    dataset = read_classification(folder, "imagefolder")
    plan = ClassificationTask.make_plan(dataset)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(input_cache.shutil, "disk_usage", lambda path: usage(10, 10, 100))
    with pytest.raises(MedsightError, match="needs .* GB of disk but"):
        InputCache(dataset.sources, dataset.load_case, plan, tmp_path / "cache", echo=lambda line: None).ensure([0])


def test_preparing_more_than_the_free_memory_is_one_line(monkeypatch):
    from medsight.errors import MedsightError

    monkeypatch.setattr(input_cache, "available_memory_bytes", lambda: 2**30)
    with pytest.raises(MedsightError, match="needs 4.0 GB of memory but 1.0 GB is available"):
        input_cache.check_fits_in_memory(4 * 2**30, "preparing 10 images", Path("data.npz"))
