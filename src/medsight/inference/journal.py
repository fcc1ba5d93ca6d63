"""Prediction over many cases: predictions.jsonl (one line per finished case), --continue and --shard i/n.

Each case's line is appended and flushed to disk as soon as the case is done, so a run killed after thousands
of cases loses one case at most; `--continue` skips the cases whose line says they were predicted by the same
weights (the sha256 of every member's model.safetensors), and predicts the others, failed ones included.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from medsight.errors import MedsightError

JOURNAL = "predictions.jsonl"


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """--shard i/n -> (i, n) with 0 <= i < n (a job array's 0-based index and its size); None -> None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(text))
    if match is None or not 0 <= int(match.group(1)) < int(match.group(2)):
        raise MedsightError(None, f"--shard must be i/n with 0 <= i < n (e.g. 0/4 ... 3/4), not {text!r}")
    return int(match.group(1)), int(match.group(2))


def shard_inputs(inputs: Sequence[Path], shard: tuple[int, int] | None) -> list[Path]:
    """The inputs of shard i of n: every n-th of the sorted list from the i-th, so the n shards split it exactly."""
    ordered = sorted(inputs, key=str)
    if shard is None:
        return ordered
    index, count = shard
    return ordered[index::count]


def weights_digest(weight_files: Iterable[Path]) -> str:
    """sha256 of the members' weight files (in order): the identity of what predicted a case."""
    total = hashlib.sha256()
    for path in weight_files:
        single = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                single.update(block)
        total.update(single.digest())
    return total.hexdigest()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """The journal's entries; a last line cut short by a kill is ignored."""
    if not path.is_file():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and "input" in entry:
            entries.append(entry)
    return entries


def latest_entries(path: Path, digest: str) -> dict[str, dict[str, Any]]:
    """The last entry of each input predicted by these weights."""
    return {e["input"]: e for e in read_journal(path) if e.get("weights_sha256") == digest}


class Journal:
    """Appends one JSON line per case, flushed and synced, so that it survives a kill between cases."""

    def __init__(self, path: Path, fresh: bool):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and path.exists():
            path.unlink()
        cut_short = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self.handle = open(path, "a", encoding="utf-8")
        if cut_short:  # a kill mid-line: end it, so the next entry starts on a line of its own
            self.handle.write("\n")

    def write(self, entry: dict[str, Any]) -> None:
        from medsight.jsonio import jsonable

        self.handle.write(json.dumps(jsonable(entry)) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()
