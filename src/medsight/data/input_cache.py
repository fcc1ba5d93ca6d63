"""Classification inputs from files, decoded once into a memory-mapped cache at the plan's input size.

A photograph of 4288 x 2848 pixels is 36 MB decoded and 146 MB as float32, while the network sees it at
3 x 128 x 128 (196 kB). Holding the decoded images grows memory with the data set; here each file is
decoded, prepared (resize and normalise, the plan's steps) and written as one row of
``<root>/<key>.npy``, then forgotten. Batches are read from the file, and the mapped pages are dropped
every few hundred MB, so resident memory stays flat however many images there are (the kernel's page
cache still keeps the file warm). The key changes with the files (path, size, mtime) and the plan's
preprocessing, so an edited plan or a replaced file gets a new cache; rows already written are reused
after an interruption (``<key>.done.npy`` marks them).
"""

from __future__ import annotations

import hashlib
import json
import mmap
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from medsight.data.memory import available_memory_bytes
from medsight.errors import MedsightError

DROP_PAGES_BYTES = 32 * 2**20  # mapped pages read before they are dropped from resident memory
WRITE_CHUNK = 32  # rows written between flushes of the cache file
PROGRESS_SECONDS = 10.0


def default_cache_root() -> Path:
    return Path.home() / ".cache" / "medsight" / "inputs"


def cache_key(sources: Sequence[Path], plan: dict[str, Any]) -> str:
    """Changes whenever a file (path, size, mtime) or the plan's preprocessing changes."""
    from medsight.data.steps import step_settings

    files = []
    for source in sources:
        stat = Path(source).stat()
        files.append((str(Path(source).absolute()), stat.st_size, stat.st_mtime_ns))
    keys = {"files": files, "input_size": plan["input_size"], "in_channels": plan["in_channels"],
            "normalization": plan["normalization"], "steps": step_settings(plan) if "preprocessing" in plan else None}
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def check_fits_in_memory(nbytes: int, what: str, path: Path | None) -> None:
    """One line, before the kernel's kill, when an allocation cannot fit in the memory that is free."""
    free = available_memory_bytes()
    if free is not None and nbytes > free:
        raise MedsightError(path, f"{what} needs {nbytes / 2**30:.1f} GB of memory but {free / 2**30:.1f} GB "
                                  "is available")


class InputCache:
    """Prepared (C, *input_size) float32 rows of every case of a file-based classification data set."""

    def __init__(self, sources: Sequence[Path], load: Callable[[int], np.ndarray], plan: dict[str, Any],
                 root: Path | None = None, echo: Callable[[str], None] | None = None):
        self.sources, self.load, self.plan = list(sources), load, plan
        self.shape = (len(self.sources), plan["in_channels"], *plan["input_size"])
        key = cache_key(self.sources, plan)
        self.folder = Path(root or default_cache_root())
        self.path, self.done_path = self.folder / f"{key}.npy", self.folder / f"{key}.done.npy"
        self.say = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self._reader: CacheReader | None = None

    def done(self) -> np.ndarray:
        if self.path.exists() and self.done_path.exists():
            return np.load(self.done_path)
        return np.zeros(len(self.sources), dtype=bool)

    def ensure(self, indices: Sequence[int]) -> None:
        """Decode and prepare the cases among indices that are not cached yet, printing progress."""
        from medsight.data.preprocess import prepare_image

        done = self.done()
        missing = [int(i) for i in np.unique(np.asarray(indices, dtype=int)) if not done[int(i)]]
        if not missing:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        row_bytes = int(np.prod(self.shape[1:])) * 4
        if not self.path.exists():
            needed = row_bytes * len(self.sources)
            free = shutil.disk_usage(self.folder).free
            if needed > free:
                raise MedsightError(self.folder, f"the input cache needs {needed / 2**30:.1f} GB of disk but "
                                                 f"{free / 2**30:.1f} GB is free")
            np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32, shape=self.shape).flush()
        self._reader = None
        self.say(f"caching {len(missing)} image(s) at {' x '.join(map(str, self.shape[1:]))} into {self.path}")
        started = last = time.monotonic()
        rows = None
        for count, index in enumerate(missing, 1):
            if rows is None:
                rows = np.lib.format.open_memmap(self.path, mode="r+")
            try:
                rows[index] = prepare_image(self.load(index), self.plan).numpy()
            except MemoryError:
                raise MedsightError(self.sources[index], "could not be decoded: this machine ran out of memory "
                                                         "holding one image at full size") from None
            done[index] = True
            now = time.monotonic()
            if count % WRITE_CHUNK == 0 or count == len(missing):
                rows.flush()
                del rows  # unmapping drops the written pages from resident memory
                rows = None
                np.save(self.done_path, done)
            if now - last >= PROGRESS_SECONDS or count == len(missing):
                last = now
                rate = count / max(now - started, 1e-9)
                left = (len(missing) - count) / rate
                self.say(f"  cached {count}/{len(missing)} ({now - started:.0f} s, ~{left:.0f} s left)")

    def rows(self, indices: Sequence[int]) -> "CachedRows":
        self.ensure(indices)
        if self._reader is None:
            self._reader = CacheReader(self.path)
        return CachedRows(self._reader, np.asarray(indices, dtype=np.int64))


class CacheReader:
    """A read-only mapping of a cache file whose resident pages are dropped as reads add up."""

    def __init__(self, path: Path):
        header = np.load(path, mmap_mode="r")  # numpy's reading of the .npy header: shape, dtype, data offset
        shape, dtype, offset = header.shape, header.dtype, header.offset
        del header
        with open(path, "rb") as handle:  # a mapping of our own, so that its pages can be dropped
            self._map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        self.array = np.frombuffer(self._map, dtype=dtype, count=int(np.prod(shape)), offset=offset).reshape(shape)
        self._read = 0

    def take(self, rows: np.ndarray) -> np.ndarray:
        out = self.array[np.asarray(rows, dtype=np.int64)]  # fancy indexing copies the rows
        self._read += out.nbytes
        if self._read >= DROP_PAGES_BYTES and hasattr(self._map, "madvise"):
            self._map.madvise(mmap.MADV_DONTNEED)  # the file stays in the page cache, outside this process
            self._read = 0
        return out


class CachedRows:
    """The prepared images of some cases, indexed like a (N, C, *input_size) tensor; each read copies a batch."""

    def __init__(self, reader: CacheReader, indices: np.ndarray):
        self.reader, self.indices = reader, indices
        self.shape = torch.Size((len(indices), *reader.array.shape[1:]))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item) -> torch.Tensor:
        if isinstance(item, torch.Tensor):
            item = item.numpy()
        picked = self.indices[item]
        if np.ndim(picked) == 0:
            return torch.from_numpy(self.reader.take(np.array([picked]))[0])
        return torch.from_numpy(self.reader.take(picked))

    def materialise(self) -> torch.Tensor:
        """All rows in memory (what SMOTE needs), after checking that they fit."""
        nbytes = int(np.prod(self.shape)) * 4
        check_fits_in_memory(nbytes, f"holding {len(self)} prepared images", None)
        return self[np.arange(len(self))]
