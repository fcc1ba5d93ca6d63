"""Detection cases prepared once (the plan's normalise and scale) and read memory-mapped from disk.

Training cuts patches from the files and prediction slides its windows over them, so the training process
holds no image: its memory does not grow with the number or the size of the images. Each case is a float16
``<case>_image.npy`` (the precision training used when the cases were held in memory) and
``<case>_steps.json``, the record of the geometric steps that maps boxes onto the prepared grid and back. The
folder's key changes with the files (path, size, mtime) and the plan's preprocessing, so an edited plan or a
replaced image gets a new cache; cases already written are reused after an interruption. World-unit plans
(``target_spacing``) use the volume cache instead (``world.py``), which also resamples.
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
from medsight.data.steps import Cropped, Prepared, Resized, as_float_tensor, step_settings
from medsight.jsonio import atomic_write
from medsight.tasks.detection.data import prepare_record
from medsight.tasks.detection.tiling import read_case_near_scale

DTYPE = np.float16
DECODE = "near-scale"  # pictures decoded at the plan's scale (tiling.read_near_scale), not in full


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "medsight" / "detection"


def cache_key(dataset: Any, plan: dict[str, Any]) -> str:
    """Changes whenever an image file or the plan's preprocessing changes."""
    files = [(str(Path(f).absolute()), Path(f).stat().st_size, Path(f).stat().st_mtime_ns)
             for case in dataset.sources for f in case]
    keys = {"files": files, "case_ids": list(dataset.case_ids), "in_channels": plan["in_channels"],
            "normalization": plan["normalization"], "scale": plan.get("scale", 1.0), "steps": step_settings(plan),
            "decode": DECODE}
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def history_json(history: Sequence[Cropped | Resized]) -> list[dict[str, Any]]:
    out = []
    for entry in history:
        if isinstance(entry, Cropped):
            out.append({"cropped": [[b.start, b.stop] for b in entry.box], "shape": list(entry.shape)})
        else:
            out.append({"resized": list(entry.shape), "new_shape": list(entry.new_shape),
                        "factors": None if entry.factors is None else list(entry.factors)})
    return out


def history_of(entries: Sequence[dict[str, Any]]) -> tuple[Cropped | Resized, ...]:
    out = []
    for e in entries:
        if "cropped" in e:
            out.append(Cropped(tuple(slice(a, b) for a, b in e["cropped"]), tuple(e["shape"])))
        else:
            out.append(Resized(tuple(e["resized"]), tuple(e["new_shape"]),
                               None if e["factors"] is None else tuple(e["factors"])))
    return tuple(out)


@dataclass
class CachedCase:
    """A prepared case on disk: the image is opened memory-mapped at each use, so only what is read is resident."""

    path: Path
    boxes: np.ndarray  # on the prepared grid
    labels: np.ndarray
    steps: tuple = ()

    @property
    def image(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")


class PreparedCache:
    """The prepared cases of a detection data set under one plan, in root/<key>/."""

    def __init__(self, dataset: Any, plan: dict[str, Any], root: Path | None = None):
        self.dataset, self.plan = dataset, plan
        self.folder = Path(root or default_cache_root()) / cache_key(dataset, plan)

    def paths(self, index: int) -> tuple[Path, Path]:
        case_id = self.dataset.case_ids[int(index)]
        return self.folder / f"{case_id}_image.npy", self.folder / f"{case_id}_steps.json"

    def missing(self, indices: Sequence[int]) -> list[int]:
        return [int(i) for i in indices if not self.paths(int(i))[1].exists()]

    def ensure(self, indices: Sequence[int]) -> None:
        """Prepare and write the cases not cached yet (under the folder's lock: folds and ranks may share it)."""

        if not self.missing(indices):
            return
        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        with folder_lock(self.folder, lambda: say(f"waiting for another process preparing {self.folder}")):
            missing = self.missing(indices)
            if missing:
                say(f"preparing {len(missing)} detection case(s) into {self.folder}")
            for index in missing:
                self.build(index)

    def build(self, index: int) -> None:

        image, source_shape = read_case_near_scale(self.dataset, index, self.plan)  # a photograph at the plan's scale
        record = prepare_record(image, self.plan, source_shape)
        image = as_float_tensor(record.image).numpy().astype(DTYPE)
        image_path, steps_path = self.paths(index)

        def write_image(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                np.save(handle, image)

        def write_steps(tmp: str) -> None:
            Path(tmp).write_text(json.dumps(history_json(record.history)), encoding="utf-8")

        atomic_write(image_path, write_image)
        atomic_write(steps_path, write_steps)  # written last: its presence marks the case as complete

    def case(self, index: int) -> CachedCase:
        index = int(index)
        self.ensure([index])
        image_path, steps_path = self.paths(index)
        steps = history_of(json.loads(steps_path.read_text(encoding="utf-8")))
        boxes, labels = training_boxes(self.dataset, index)  # the targets: ignored boxes left out
        return CachedCase(image_path, Prepared(None, (), history=steps).map_boxes(np.asarray(boxes, float)), labels, steps)


def training_boxes(dataset, index: int) -> tuple[np.ndarray, np.ndarray]:
    """A case's boxes and labels to train on (a data set built in memory may lack DetectionDataset's method)."""
    if hasattr(dataset, "training_boxes"):
        return dataset.training_boxes(index)
    return dataset.boxes[index], dataset.labels[index]


def box_kinds(dataset, index: int) -> np.ndarray | None:
    """Each box's kind for the metrics (VOC difficult, COCO crowd are ignored); None: all scored."""
    return dataset.box_kinds(index) if hasattr(dataset, "box_kinds") else None
