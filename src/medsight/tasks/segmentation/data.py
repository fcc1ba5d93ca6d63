"""Segmentation data path: plan-driven preprocessing, a memory-mapped cache, patch sampling and augmentation.

Each case is resampled to the plan's spacing and normalised once, then stored as .npy files that later
epochs (and other folds sharing the plan) memory-map instead of re-reading. Patches are cut with padding
where they leave the volume; a third of each batch is centred on a foreground voxel of a random class
(nnU-Net's oversampling), so small structures are seen often.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from medsight.data.preprocess import zscore
from medsight.data.steps import Prepared, apply_steps, as_float_tensor, step_settings

FOREGROUND_LOCATIONS = 2000  # voxel positions kept per class and case for oversampling


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "medsight" / "preprocessed"


# preprocessing ------------------------------------------------------------------------------------------------
def resampled_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float]) -> list[int]:
    return [max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target)]


def resample(array: torch.Tensor, shape: Sequence[int], is_label: bool) -> torch.Tensor:
    """(C, *spatial) -> (C, *shape): linear for intensities and probabilities, nearest for label maps."""
    if tuple(array.shape[1:]) == tuple(shape):
        return array
    mode = "nearest-exact" if is_label else ("bilinear" if len(shape) == 2 else "trilinear")
    kwargs = {} if is_label else {"align_corners": False}
    return F.interpolate(array[None].float(), size=tuple(shape), mode=mode, **kwargs)[0]


def normalize(image: torch.Tensor, schemes: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Per channel: CT clip + global z-score, or per-case z-score."""
    out = torch.empty_like(image, dtype=torch.float32)
    for ch, scheme in enumerate(schemes):
        x = image[ch].float()
        if scheme["scheme"] == "ct":
            out[ch] = zscore(x, scheme["mean"], scheme["std"], scheme["clip"])
        else:
            out[ch] = zscore(x, x.mean(), x.std().clamp_min(1e-8))
    return out


def prepare_case(image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
                 label: np.ndarray | None = None):
    """Raw (C, *spatial) image (and label) through the plan's steps -> steps.Prepared (torch image, uint8 label)."""
    def resample_step(state: Prepared) -> Prepared:
        shape = resampled_shape(state.image.shape[1:], state.spacing, plan["target_spacing"])
        x = resample(as_float_tensor(state.image), shape, False)
        y = None if state.label is None else resample(
            torch.as_tensor(np.asarray(state.label, dtype=np.uint8))[None], shape, True)[0]
        return replace(state, image=x, label=y, spacing=tuple(float(t) for t in plan["target_spacing"]))

    def normalize_step(state: Prepared) -> Prepared:
        return replace(state, image=normalize(as_float_tensor(state.image), plan["normalization"]))

    state = apply_steps(image, spacing, plan, {"resample": resample_step, "normalize": normalize_step}, label)
    label = None if state.label is None else torch.as_tensor(np.ascontiguousarray(state.label)).to(torch.uint8)
    return replace(state, image=as_float_tensor(state.image), label=label)


def preprocess(image: np.ndarray, spacing: Sequence[float], plan: dict[str, Any],
               label: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw (C, *spatial) image (and label) -> the network's input on the plan's grid (and the label on it)."""
    state = prepare_case(image, spacing, plan, label)
    return state.image, state.label


def foreground_locations(label: np.ndarray, classes: Sequence[int], rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Up to FOREGROUND_LOCATIONS voxel indices per present class."""
    out = {}
    for c in classes:
        where = np.argwhere(label == c)
        if len(where):
            keep = rng.choice(len(where), min(len(where), FOREGROUND_LOCATIONS), replace=False)
            out[c] = where[np.sort(keep)].astype(np.int32)
    return out


# cache ----------------------------------------------------------------------------------------------------------
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
        from medsight.data.folder_lock import folder_lock

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
        from medsight.jsonio import atomic_write

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


# patches --------------------------------------------------------------------------------------------------------
def crop(array: np.ndarray, start: Sequence[int], size: Sequence[int], leading: int) -> np.ndarray:
    """array[..., start:start+size] over the last len(size) axes, zero-padded where the window leaves the array."""
    spatial = array.shape[leading:]
    out = np.zeros(array.shape[:leading] + tuple(size), dtype=array.dtype)
    src, dst = [slice(None)] * leading, [slice(None)] * leading
    for s, n, total in zip(start, size, spatial):
        lo, hi = max(s, 0), min(s + n, total)
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo - s, lo - s + max(0, hi - lo)))
    out[tuple(dst)] = array[tuple(src)]
    return out


def patch_start(shape: Sequence[int], patch: Sequence[int], rng: np.random.Generator,
                centre: Sequence[int] | None = None) -> list[int]:
    """A window start: random, or around centre, kept so that the window overlaps the volume as much as it can."""
    starts = []
    for a, (n, p) in enumerate(zip(shape, patch)):
        low, high = min(0, n - p), max(0, n - p)
        if centre is None:
            s = int(rng.integers(low, high + 1))
        else:
            s = int(centre[a]) - p // 2 + int(rng.integers(-(p // 4), p // 4 + 1))
        starts.append(int(np.clip(s, low, high)))
    return starts


def sample_patch(case: CachedCase, patch: Sequence[int], rng: np.random.Generator,
                 foreground: bool) -> tuple[np.ndarray, np.ndarray]:
    """(image (C, *patch), label (1, *patch)); foreground=True centres on a voxel of a random present class."""
    centre = None
    if foreground and case.locations:
        c = list(case.locations)[int(rng.integers(len(case.locations)))]
        centre = case.locations[c][int(rng.integers(len(case.locations[c])))]
    start = patch_start(case.label.shape, patch, rng, centre)
    return crop(case.image, start, patch, 1), crop(case.label, start, patch, 0)[None]


def build_augment(plan: dict[str, Any]):
    """MONAI dictionary transforms for ("image", "label"): affine, flips, noise, blur, intensity scale, gamma."""
    import math

    from monai.transforms import (Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised,
                                  RandGaussianSmoothd, RandScaleIntensityd)

    a, dims = plan["augment"], plan["spatial_dims"]
    angle = math.radians(a["rotate_degrees"])
    rotate = (angle,) if dims == 2 else (angle, angle, angle)
    low, high = a["scale"]
    transforms = [
        RandAffined(("image", "label"), prob=a["affine_probability"], rotate_range=rotate,
                    scale_range=[(low - 1, high - 1)] * dims, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandGaussianNoised("image", prob=a["noise_probability"], std=a["noise_std"]),
        RandGaussianSmoothd("image", prob=a["blur_probability"], sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        RandScaleIntensityd("image", factors=a["intensity_scale"], prob=a["intensity_probability"]),
        RandAdjustContrastd("image", prob=a["gamma_probability"], gamma=tuple(a["gamma"])),
    ]
    transforms += [RandFlipd(("image", "label"), prob=0.5, spatial_axis=axis) for axis in a["flip_axes"]]
    return Compose(transforms)


def plain_tensor(value: Any) -> torch.Tensor:
    """A torch tensor without MONAI's metadata (MetaTensor), from a tensor or an array."""
    if hasattr(value, "as_tensor"):
        return value.as_tensor()
    return torch.as_tensor(np.asarray(value))


class PatchBatches:
    """One epoch of augmented patch batches (a sized iterable; the loop counts the steps).

    Each step draws from its own generator, seeded from (seed, step), so a step's batch is the same whichever
    process makes it: in the training process, or in any DataLoader worker (medsight.data.workers).
    """

    def __init__(self, cache: PreprocessedCache, indices: Sequence[int], plan: dict[str, Any], batch_size: int,
                 steps: int, seed: int, augment=None):
        self.cache, self.indices, self.plan = cache, [int(i) for i in indices], plan
        self.batch_size, self.steps, self.augment, self.seed = batch_size, steps, augment, int(seed)

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return (self.batch(step) for step in range(self.steps))

    def batch(self, step: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, step])
        if self.augment is not None:
            self.augment.set_random_state(seed=int(rng.integers(2**32)))
        patch = self.plan["patch_size"]
        forced = int(round(self.batch_size * self.plan["oversample_foreground"]))
        images, labels = [], []
        for k in range(self.batch_size):
            case = self.cache.get(self.indices[int(rng.integers(len(self.indices)))])
            image, label = sample_patch(case, patch, rng, foreground=k >= self.batch_size - forced)
            if self.augment is not None:
                out = self.augment({"image": torch.from_numpy(image), "label": torch.from_numpy(label)})
                image, label = out["image"], out["label"]
            images.append(plain_tensor(image).float())
            labels.append(plain_tensor(label).to(torch.uint8))
        return {"image": torch.stack(images), "label": torch.stack(labels)}
