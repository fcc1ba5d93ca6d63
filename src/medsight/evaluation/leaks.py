"""`medsight check`'s look for leaks between splits: one patient, or one identical image, on two sides."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from medsight.data.splits import file_digest, leak_warnings


def case_files(dataset, index: int) -> list[Path] | None:
    """The files holding a case's image, where the data set reads cases from files."""
    if getattr(dataset, "cases", None):  # segmentation
        return list(dataset.cases[index].images)
    sources = getattr(dataset, "sources", None)
    if sources:
        source = sources[index]
        return list(source) if isinstance(source, (list, tuple)) else [source]
    return None


def case_digest(dataset, index: int) -> str:
    """SHA-256 of a case's image files (in-memory data sets: of its array)."""
    files = case_files(dataset, index)
    if files is not None:
        return file_digest(files)
    array = np.ascontiguousarray(dataset.load_case(index))
    return hashlib.sha256(array.tobytes() + str(array.shape).encode()).hexdigest()


def split_leaks(dataset) -> list[str]:
    """One line per patient or identical image found in two splits, naming the files (or cases)."""
    cases = sorted({int(i) for name in ("train", "val", "test") for i in dataset.splits.get(name, [])})
    digests = [""] * len(dataset.case_ids)
    names = list(dataset.case_ids)
    for i in cases:
        digests[i] = case_digest(dataset, i)
        files = case_files(dataset, i)
        if files:
            names[i] = str(files[0])
    return leak_warnings(dataset, digests, names)
