"""Atomic file writes: a killed process never leaves a half-written file behind."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from medsight.errors import MedsightError


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None  # JSON has no NaN
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[str], None], suffix: str = ".tmp") -> None:
    """Call write(tmp_path), fsync, then rename over path: readers see the old or the new file, never a torn one.

    ``suffix`` ends the temporary name, for writers that pick the format from it (SimpleITK). A folder that
    cannot be written (read-only, full disk) is a MedsightError naming the file; the old file stays as it was.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        raise MedsightError(path, f"cannot be written ({exc.strerror or exc})") from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes atomically (serialise first, so a full disk is an OSError here, not a library's own error)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            handle.write(data)

    atomic_write(path, write)


def _discard(tmp: str | None) -> None:
    if tmp is not None and os.path.exists(tmp):
        try:
            os.unlink(tmp)
        except OSError:
            pass  # a read-only folder cannot hold a temporary in the first place


def save_json(path: str | Path, obj: Any) -> None:
    """Write obj as indented JSON, atomically; NaN and inf become null."""
    text = json.dumps(jsonable(obj), indent=2)

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")

    atomic_write(path, write)


def load_json(path: str | Path) -> Any:
    """Read JSON, turning a missing or malformed file into a MedsightError that names it."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise MedsightError(path, "file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedsightError(path, f"is not valid JSON ({exc})") from None
