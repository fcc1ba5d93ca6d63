"""Training state on disk: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from medsight.errors import MedsightError
from medsight.jsonio import atomic_write


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True: a crafted pickle is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise MedsightError(path, "no checkpoint to resume from (train without --resume first)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MedsightError(path, f"refused to load: it holds objects other than tensors and plain data ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise MedsightError(path, f"is not a readable checkpoint ({type(exc).__name__}: {exc})") from None
