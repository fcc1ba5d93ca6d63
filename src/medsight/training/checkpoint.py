"""Training state on disk: written atomically, read without unpickling arbitrary objects."""

from __future__ import annotations

import io
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from medsight.errors import MedsightError
from medsight.jsonio import atomic_write_bytes


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Serialise in memory, then write atomically: a full disk is one clear error and the last checkpoint stays."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True: a crafted pickle is refused, never executed."""
    path = Path(path)
    if not path.is_file():
        raise MedsightError(path, "no checkpoint to resume from (train without --resume first)")
    try:
        with warnings.catch_warnings():
            # torch warns about the pickle protocol of foreign files before refusing them; the refusal says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise MedsightError(path, f"refused to load: it holds objects other than tensors and plain data, which could "
                                  f"run code ({refused_object(exc)}); medsight never unpickles them") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise MedsightError(path, f"is not a readable checkpoint ({type(exc).__name__}: {exc})") from None


def refused_object(exc: Exception) -> str:
    """The line of torch's weights-only error that names what was refused (e.g. 'unsupported GLOBAL posix.system')."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line.rstrip(".")
    return lines[0].rstrip(".") if lines else type(exc).__name__
