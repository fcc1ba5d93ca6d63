"""Detection tests run single-threaded: on the shared, oversubscribed CPUs two threads were ~10x slower."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def single_threaded(one_thread):
    """Every detection test under tests/conftest.py's ``one_thread``."""
