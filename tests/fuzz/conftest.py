"""Counts of generated bad inputs per reader, shown at the end of the pytest run."""

from __future__ import annotations

from collections import Counter

import pytest

CASES: Counter = Counter()


@pytest.fixture
def fuzz_cases() -> Counter:
    return CASES


def pytest_terminal_summary(terminalreporter):
    if CASES:
        terminalreporter.section("fuzz: generated bad inputs tried per reader")
        for reader, count in sorted(CASES.items()):
            terminalreporter.write_line(f"{reader:<28} {count:>5} cases")
        terminalreporter.write_line(f"{'total':<28} {sum(CASES.values()):>5} cases")
