"""A progress line for long predictions: done/total, elapsed and an estimate of the time left."""

from __future__ import annotations

import sys
import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Counts finished items and prints "label: i/total, Ns elapsed, ~Ms left" at most every few seconds.

    Nothing is printed for a single item, so that the server's one-image requests stay quiet; the last
    item always prints, so a long run ends with its total time.
    """

    def __init__(self, total: int, label: str = "predict", every_seconds: float = 2.0,
                 echo: Callable[[str], None] = _stderr):
        self.total, self.label, self.every, self.echo = total, label, every_seconds, echo
        self.done = 0
        self.start = self.last = time.perf_counter()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = time.perf_counter()
        if self.total > 1 and (now - self.last >= self.every or self.done >= self.total):
            self.last = now
            elapsed = now - self.start
            left = elapsed / max(self.done, 1) * max(self.total - self.done, 0)
            self.echo(f"{self.label}: {self.done}/{self.total}, {elapsed:.0f} s elapsed, ~{left:.0f} s left")


def progress(items: Iterable[T], total: int, label: str = "predict", every_seconds: float = 2.0,
             echo: Callable[[str], None] = _stderr) -> Iterator[T]:
    """Yield items, reporting each one finished when the next is asked for (and the last at the end)."""
    meter = Progress(total, label, every_seconds, echo)
    for item in items:
        yield item
        meter.advance()
