"""Run `medsight ARGS...` and SIGKILL the process at an exact point, to test that a killed run resumes exactly.

Usage: python fault_runner.py KIND:TARGET:N -- ARGS...
  backward::N        during the N-th training step (before its backward pass)
  validate::N        inside the N-th validation, its metrics computed but not yet returned
  save:NAME:N        half-way through writing the N-th temporary of RUN/NAME (weights, checkpoint)
  replace:NAME:N     after the N-th temporary of RUN/NAME is complete, just before it is renamed into place
Nothing in medsight knows about this: the points are reached by wrapping library functions in this process.
"""

from __future__ import annotations

import os
import signal
import sys
from collections import Counter
from typing import Callable

calls: Counter = Counter()


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def reached(kind: str, target: str, count: int) -> bool:
    calls[kind] += 1
    return calls[kind] == count


def write_half(path: str, payload: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(payload[: len(payload) // 2])
        handle.flush()
        os.fsync(handle.fileno())


def install(kind: str, target: str, count: int) -> None:
    if kind == "backward":
        import torch

        original_backward = torch.Tensor.backward

        def backward(self, *args, **kwargs):
            if reached(kind, target, count):
                die()
            return original_backward(self, *args, **kwargs)

        torch.Tensor.backward = backward
    elif kind == "validate":
        import medsight.api as api  # the facade looks the task class up by name

        original_get_task = api.get_task

        def get_task(name: str):
            cls = original_get_task(name)
            original_validate: Callable = cls.validate
            if not getattr(original_validate, "wrapped", False):
                def validate(self, *args, **kwargs):
                    metrics = original_validate(self, *args, **kwargs)
                    if reached(kind, target, count):
                        die()
                    return metrics

                validate.wrapped = True
                cls.validate = validate
            return cls

        api.get_task = get_task
    elif kind == "save":
        import medsight.jsonio as jsonio

        original_atomic_write = jsonio.atomic_write  # atomic_write_bytes (weights, checkpoints) calls it

        def atomic_write(path, write, *args, **kwargs):
            if os.path.basename(os.fspath(path)) == target and reached(kind, target, count):
                def half_then_die(tmp: str) -> None:
                    write(tmp)
                    with open(tmp, "rb") as handle:
                        payload = handle.read()
                    write_half(tmp, payload)
                    die()

                return original_atomic_write(path, half_then_die, *args, **kwargs)
            return original_atomic_write(path, write, *args, **kwargs)

        jsonio.atomic_write = atomic_write
    elif kind == "replace":
        original_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if os.path.basename(os.fspath(dst)) == target and reached(kind, target, count):
                die()
            return original_replace(src, dst, *args, **kwargs)

        os.replace = replace
    else:
        raise SystemExit(f"unknown kill point {kind!r}")


def main() -> int:
    spec, separator, *argv = sys.argv[1:]
    assert separator == "--", __doc__
    if spec != "none":
        kind, target, count = spec.split(":")
        install(kind, target, int(count))
    from medsight.cli import main as medsight_main

    return medsight_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
