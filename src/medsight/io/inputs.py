"""Finding the images to predict: files, folders of files, and folders holding one DICOM series each."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from medsight.errors import MedsightError
from medsight.io.images import is_dicom_series, is_hidden, is_image_file, strip_suffix


def discover_inputs(paths: Sequence[Path]) -> list[Path]:
    """Expand files and folders into the list of inputs: image files and DICOM series folders, sorted per folder.

    A folder whose files are DICOM slices, or a tree holding only DICOM files of one study with a volume in it,
    is one input (the reader chooses the series); any other folder is searched recursively.
    """
    from medsight.io.dicom_series import is_study  # the series reader sits above this module

    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise MedsightError(path, "no such file or directory")
        if path.is_file():
            found.append(path)  # named explicitly: the reader says what is wrong if it is no image
        elif is_dicom_series(path) or is_study(path, with_volume=True):
            found.append(path)  # a series or a study: the reader chooses the series
        else:
            before = len(found)
            found.extend(_walk(path, is_image_file, is_dicom_series))
            if len(found) == before:
                raise MedsightError(path, "holds no image files (PNG, JPEG, TIFF, NIfTI, NRRD, MHA, DICOM)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return [Path(p) for p in unique]


def _walk(folder: Path, is_image, is_series) -> Iterable[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        root_path = Path(root)
        if root_path != folder and is_series(root_path):
            dirs[:] = []
            yield root_path
            continue
        for name in sorted(files):
            candidate = root_path / name
            if is_image(candidate):
                yield candidate


def output_names(inputs: Sequence[Path]) -> list[str]:
    """A unique, file-system-safe stem per input (report.png and report_2.png when two inputs share a name)."""
    names: list[str] = []
    used: set[str] = set()
    for path in inputs:
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in strip_suffix(Path(path))).strip(".") or "image"
        name, count = stem, 1
        while name in used:
            count += 1
            name = f"{stem}_{count}"
        used.add(name)
        names.append(name)
    return names
