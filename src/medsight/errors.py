"""The one error type users see: a file (or run folder) and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class MedsightError(Exception):
    """Bad input that the user can act on; the CLI prints it on one line and exits with code 2."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = " ".join(str(problem).split())  # always one line
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}" if self.path else self.problem
