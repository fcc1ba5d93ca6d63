"""Scans put on the plan's grid of millimetres slab by slab (medsight.data.slabs), for the cache and prediction.

The volume cache's own builder resamples a case in memory (its float32 copy, the resampled one and the
normalised one at once: about 1.5 GB for a 512 x 512 x 300 CT). Here the scan is read once in its own dtype
(int16: 157 MB) and written to disk a few planes at a time, so the memory of building the cache, and of
predicting a scan, is about the scan as stored, whatever the target grid.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medsight.data.preprocess import zscore
from medsight.data.slabs import write_resampled
from medsight.data.volume_cache import PreprocessedCache
from medsight.data.volumes import resampled_shape
from medsight.io.images import read_image
from medsight.jsonio import atomic_write


def channel_normalizer(schemes: Sequence[dict[str, Any]]) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """normalise(planes, channel) by the plan's CT scheme (clip, then global mean and std: voxel by voxel)."""

    def apply(planes: torch.Tensor, channel: int) -> torch.Tensor:
        s = schemes[channel]
        return zscore(planes, s["mean"], s["std"], s["clip"])

    return apply


def streams(plan: dict[str, Any]) -> bool:
    """Whether every channel's normalisation works voxel by voxel (a per-case z-score needs the whole case)."""
    return all(s.get("scheme") == "ct" for s in plan["normalization"])


def read_native(files: Sequence[Path]) -> np.ndarray:
    """(C, Z, Y, X) in the files' own dtype (CT's int16 stays int16)."""

    arrays = [np.asarray(read_image(f).array) for f in files]
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=0)


def write_world(raw: np.ndarray, spacing: Sequence[float], cache_plan: dict[str, Any], path: Path) -> tuple[int, ...]:
    """A raw (C, z, y, x) scan resampled to the plan's target spacing and normalised -> float32 .npy at path."""
    shape = resampled_shape(raw.shape[1:], spacing, cache_plan["target_spacing"])
    return write_resampled(raw, shape, path, channel_normalizer(cache_plan["normalization"]))


class StreamedCache(PreprocessedCache):
    """The volume cache, each scan of a CT-normalised plan written slab by slab (others as the cache does)."""

    def build(self, index: int) -> None:
        if not streams(self.plan):
            return super().build(index)
        case_id = self.dataset.case_ids[index]
        image_path, _, locations_path = self.paths(case_id)
        raw = read_native(self.dataset.dataset.sources[index])
        spacing = self.dataset.dataset.geometries[index].array_spacing
        atomic_write(image_path, lambda tmp: write_world(raw, spacing, self.plan, Path(tmp)))

        def no_locations(tmp: str) -> None:  # an image-only cache; written last, it marks the case complete
            with open(tmp, "wb") as handle:
                np.savez(handle)

        atomic_write(locations_path, no_locations)


def detect_world(models: Sequence[Any], raw: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
                 device: torch.device, cache_plan: dict[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Boxes on the target grid of a raw scan written there slab by slab (a temporary file, memory-mapped)."""
    from medsight.tasks.detection.infer import detect_prepared

    raw = raw[: plan["in_channels"]]
    with tempfile.TemporaryDirectory(prefix="medsight-scan-") as folder:
        path = Path(folder) / "scan.npy"
        shape = write_world(raw, spacing, cache_plan, path)
        found = detect_prepared(models, np.load(path, mmap_mode="r"), plan, device)
    return found, np.asarray(shape[1:], float) / np.asarray(raw.shape[1:], float)
