"""Detection tests run single-threaded: on the shared, oversubscribed CPUs two threads were ~10x slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
