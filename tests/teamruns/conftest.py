"""Two tiny synthetic classification runs (LeNet, one epoch) shared by the tracking, compare, card and pack tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def team_data(tmp_path_factory) -> Path:
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("team-data") / "lesions.npz", n_train=64, n_val=24,
                                   n_test=30, size=28, lesion_fraction=0.4, seed=7)


def _trained(data: Path, out: Path, **settings) -> Path:
    import torch

    from medsight import api

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        api.train(data, out, model="lenet5", epochs=settings.pop("epochs", 1), **settings)
        api.evaluate(out, split="test")
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session")
def run_a(team_data, tmp_path_factory) -> Path:
    return _trained(team_data, tmp_path_factory.mktemp("team") / "run_a", seed=0)


@pytest.fixture(scope="session")
def run_b(team_data, tmp_path_factory) -> Path:
    return _trained(team_data, tmp_path_factory.mktemp("team") / "run_b", seed=0, balance="weights", epochs=2)
