"""A memory-mapped cache of preprocessed volumes, shared by the folds and runs of one plan.

Each case is resampled and normalised once (medsight.data.volumes), then stored as .npy files under
<root>/<key>/ that later epochs, folds and other runs with the same settings memory-map instead of re-reading.
With a label, the cache also keeps up to FOREGROUND_LOCATIONS voxel positions per class and case, from which
patch sampling (medsight.data.patches) centres its foreground patches. A detection data set is cached the same
way without labels (its boxes stay with the data set).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from medsight.data.folder_lock import folder_lock
from medsight.data.steps import step_settings
from medsight.data.volumes import preprocess
from medsight.jsonio import atomic_write

FOREGROUND_LOCATIONS = 2000  # voxel positions kept per class and case for oversampling


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "medsight" / "preprocessed"


def foreground_locations(label: np.ndarray, classes: Sequence[int], rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Up to FOREGROUND_LOCATIONS voxel indices per present class."""
    out = {}
    for c in classes:
        where = np.argwhere(label == c)
        if len(where):
            keep = rng.choice(len(where), min(len(where), FOREGROUND_LOCATIONS), replace=False)
            out[c] = where[np.sort(keep)].astype(np.int32)
    return out


@dataclass
class CachedCase:
    case_id: str
    image: np.ndarray  # memory-mapped (C, *spatial) float32
    label: np.ndarray | None  # memory-mapped (*spatial) uint8; None in an image-only (detection) cache
    locations: dict[int, np.ndarray]


def cache_key(dataset, plan: dict[str, Any]) -> str:
    """Changes whenever the data set or the preprocessing settings change."""
    sources = dataset.cache_files() if hasattr(dataset, "cache_files") else [
        p for case in dataset.cases for p in [*case.images, case.label]]
    files = [(str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in sources if p is not None and p.exists()]
    keys = {"source": str(Path(dataset.path).resolve()), "spacing": plan["target_spacing"],
            "normalization": plan["normalization"], "labels": plan["labels"], "files": files,
            "steps": step_settings(plan)}
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


class PreprocessedCache:
    """Preprocessed cases as .npy files under root/<key>/, written once and memory-mapped afterwards."""

    def __init__(self, dataset, plan: dict[str, Any], root: Path | None = None):
        self.dataset, self.plan = dataset, plan
        self.folder = Path(root or default_cache_root()) / cache_key(dataset, plan)
        self._open: dict[int, CachedCase] = {}

    def paths(self, case_id: str) -> tuple[Path, Path, Path]:
        return (self.folder / f"{case_id}_image.npy", self.folder / f"{case_id}_label.npy",
                self.folder / f"{case_id}_locations.npz")

    def missing(self, indices: Sequence[int]) -> list[int]:
        return [int(i) for i in indices if not self.paths(self.dataset.case_ids[int(i)])[2].exists()]

    def ensure(self, indices: Sequence[int], echo=None) -> None:
        """Preprocess the cases that are not cached yet, with progress.

        Several processes (folds, ranks, machines sharing the folder) may call this at once: one builds under the
        folder's lock while the others wait, then find the cases done. Every file is written to a temporary and
        renamed into place, the locations file last, so a case is never seen half-written.
        """
        if not self.missing(indices):
            return
        say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        with folder_lock(self.folder, lambda: say(f"waiting for another process preprocessing into {self.folder}")):
            missing = self.missing(indices)  # what the lock's previous holder did not build
            if missing:
                say(f"preprocessing {len(missing)} case(s) into {self.folder}")
            for done, index in enumerate(missing, 1):
                self.build(index)
                if done % 25 == 0 or done == len(missing):
                    say(f"  preprocessed {done}/{len(missing)}")

    def build(self, index: int) -> None:
        def saved(write):
            def to_file(tmp: str) -> None:
                with open(tmp, "wb") as handle:
                    write(handle)
            return to_file

        case = self.dataset.load_case(index)
        image, label = preprocess(case.image, case.spacing, self.plan, case.label)
        image_path, label_path, locations_path = self.paths(case.case_id)
        atomic_write(image_path, saved(lambda f: np.save(f, image.numpy())))
        if label is not None:
            atomic_write(label_path, saved(lambda f: np.save(f, label.numpy())))
        classes = [int(c) for c in self.plan["labels"] if int(c) != 0]
        locations = {}
        if label is not None:  # detection caches images only (its boxes stay with the data set)
            locations = foreground_locations(label.numpy(), classes, np.random.default_rng(index))
        # written last: its presence marks the case as complete
        atomic_write(locations_path, saved(lambda f: np.savez(f, **{str(c): v for c, v in locations.items()})))

    def get(self, index: int) -> CachedCase:
        index = int(index)
        if index not in self._open:
            case_id = self.dataset.case_ids[index]
            image_path, label_path, locations_path = self.paths(case_id)
            with np.load(locations_path) as raw:
                locations = {int(k): raw[k] for k in raw.files}
            label = np.load(label_path, mmap_mode="r") if label_path.exists() else None
            self._open[index] = CachedCase(case_id, np.load(image_path, mmap_mode="r"), label, locations)
        return self._open[index]
