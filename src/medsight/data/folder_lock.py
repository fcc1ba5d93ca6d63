"""An exclusive lock on a folder shared by several processes or machines (fcntl.flock on FOLDER/.lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Callable, Iterator

LOCK_NAME = ".lock"


@contextlib.contextmanager
def folder_lock(folder: Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold folder's lock for the block; on_wait is called once when another process holds it first.

    flock locks are released by the kernel when their holder dies, so a killed builder never leaves the folder
    locked. (On NFS, flock is emulated with POSIX locks by Linux clients >= 2.6.12, which lock across machines.)
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
