"""What the training loop tells the outside world: a start, one row per epoch, an end (rank 0 only).

The loop stays task-agnostic and knows nothing of who listens; experiment trackers (medsight.tracking)
are one kind of listener. Under DDP the loop calls them on rank 0 alone, with rows whose training loss is
already the mean over all ranks and whose validation figures rank 0 computed for everyone.
"""

from __future__ import annotations

from typing import Any


class TrainingCallback:
    """Override what you need; every hook is a no-op by default."""

    def on_train_start(self, run: Any, config: Any, plan: dict[str, Any], progress: dict[str, Any]) -> None:
        """Called once the model, optimiser and (on --resume) the checkpoint's progress are ready."""

    def on_epoch_end(self, row: dict[str, Any], progress: dict[str, Any]) -> None:
        """Called after each epoch's row is in log.csv (and its checkpoint on disk)."""

    def on_train_end(self, summary: dict[str, Any]) -> None:
        """Called after state.json is written: best epoch, best score, epochs, seconds."""
