"""Segmentation's training data: the cache of the cases a run needs, and each epoch's augmented patch batches.

The pieces are shared with other tasks and live in medsight.data: preprocessing in volumes, the cache in
volume_cache, patch sampling with foreground oversampling in patches, the label-aware augmentation in augment.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from medsight.data.patches import PatchBatches
from medsight.data.ranks import per_rank_batch
from medsight.data.volume_cache import PreprocessedCache


def training_cache(dataset: Any, plan: dict[str, Any], root=None) -> PreprocessedCache:
    """The cache of the data set under the plan, with every training and validation case built."""
    cache = PreprocessedCache(dataset, plan, root)
    needed = np.concatenate([dataset.splits["train"], dataset.splits.get("val", np.array([], int))])
    cache.ensure(np.unique(needed))
    return cache


def epoch_batches(cache: PreprocessedCache, indices: Sequence[int], plan: dict[str, Any], batch_size: int,
                  epoch: int, seed: int, rank: int, world_size: int, augment) -> PatchBatches:
    """One epoch of the plan's iterations; the plan's batch is the global one, so each rank takes its share."""
    steps = max(1, int(plan["iterations_per_epoch"]))
    stream = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    return PatchBatches(cache, indices, plan, per_rank_batch(batch_size, world_size), steps, stream, augment)
