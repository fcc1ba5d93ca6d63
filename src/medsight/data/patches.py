"""Training patches from cached volumes, with nnU-Net's foreground oversampling.

Patches are cut with zero padding where they leave the volume; the last oversample_foreground share of each
batch is centred on a foreground voxel of a random present class, so small structures are seen often.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np
import torch

from medsight.data.volume_cache import CachedCase, PreprocessedCache


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
