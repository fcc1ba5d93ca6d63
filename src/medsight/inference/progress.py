"""A progress line for long predictions: done/total, elapsed and an estimate of the time left."""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def progress(items: Iterable[T], total: int, label: str = "predict", every_seconds: float = 2.0,
             echo: Callable[[str], None] = _stderr) -> Iterator[T]:
    """Yield items, printing "label: i/total, Ns elapsed, ~Ms left" at most every few seconds (and at the end).

    Nothing is printed for a single item, so that the server's one-image requests stay quiet.
    """
    start = last = time.perf_counter()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        if total > 1 and (now - last >= every_seconds or done == total):
            last = now
            elapsed = now - start
            left = elapsed / done * (total - done)
            echo(f"{label}: {done}/{total}, {elapsed:.0f} s elapsed, ~{left:.0f} s left")
