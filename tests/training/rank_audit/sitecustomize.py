"""Loaded by every Python process when this folder is on PYTHONPATH: DDP ranks other than 0 record each file
they create, write, rename or delete under MEDSIGHT_AUDIT_ROOT into MEDSIGHT_AUDIT_LOG (an audit hook, PEP 578)."""

import os
import sys

_ROOT = os.environ.get("MEDSIGHT_AUDIT_ROOT")
_LOG = os.environ.get("MEDSIGHT_AUDIT_LOG")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_busy = False


def _under_root(path) -> bool:
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, (str, os.PathLike)):
        return False
    root, full = os.path.abspath(_ROOT), os.path.abspath(os.fspath(path))
    return full == root or full.startswith(root + os.sep)


def _is_write(event: str, args) -> bool:
    if event == "open":
        _, mode, flags = args
        if mode is None:
            return bool(flags & _WRITE_FLAGS)
        return isinstance(mode, str) and any(c in mode for c in "wax+")
    return event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod")


def _hook(event: str, args) -> None:
    global _busy
    if _busy or event not in ("open", "os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod"):
        return
    if not args or not _is_write(event, args):
        return
    paths = [a for a in args[:2] if isinstance(a, (str, bytes, os.PathLike))]
    if any(_under_root(p) for p in paths):
        _busy = True
        try:
            with open(_LOG, "a") as handle:
                handle.write(f"rank {os.environ.get('RANK')} {event} {[os.fspath(p) for p in paths]}\n")
        finally:
            _busy = False


if _ROOT and _LOG and os.environ.get("RANK", "0") != "0":
    sys.addaudithook(_hook)
