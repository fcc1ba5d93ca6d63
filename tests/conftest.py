"""Shared fixtures: tiny synthetic data written by medsight itself, and the real data sets when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Under pytest-xdist (-n N) the workers share the cores: each gets its share of them, so N workers do not run
# N x 2 torch threads that spin against each other.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
torch.set_num_threads(max(1, min(2, torch.get_num_threads() // _WORKERS)))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def one_thread():
    """Torch on one thread for a test: on the shared, oversubscribed CPUs two threads were ~10x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def input_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Classification input caches and prepared detection cases go to a temporary folder, not ~/.cache."""
    from medsight.data import input_cache
    from medsight.tasks.detection import cache as detection_cache

    root = tmp_path_factory.getbasetemp() / "input-cache"
    monkeypatch.setattr(input_cache, "default_cache_root", lambda: root)
    monkeypatch.setattr(detection_cache, "default_cache_root", lambda: tmp_path_factory.getbasetemp() / "detection-cache")


@pytest.fixture(scope="session")
def shared_data():
    """shared_data(relative) -> a real data set beside the project; the test skips where it is absent."""

    def find(relative: str) -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"{path} is not present on this machine")
        return path

    return find


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory) -> Path:
    """A small 2D MedMNIST-style set with a faint-lesion class."""
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("npz") / "lesions.npz", n_train=96, n_val=32,
                                   n_test=40, size=28, lesion_fraction=0.4, seed=3)
