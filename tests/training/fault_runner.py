"""Run `medsight ARGS...` and SIGKILL the process at an exact point, to test that a killed run resumes exactly.

Usage: python fault_runner.py KIND:TARGET:N -- ARGS...
  backward::N        during the N-th training step (before its backward pass)
  validate::N        inside the N-th validation, its metrics computed but not yet returned
  save:NAME:N        half-way through writing the N-th temporary of RUN/NAME (torch.save or safetensors)
  replace:NAME:N     after the N-th temporary of RUN/NAME is complete, just before it is renamed into place
Nothing in medsight knows about this: the points are reached by wrapping library functions in this process.
"""

from __future__ import annotations

import io
import os
import signal
import sys
from collections import Counter
from typing import Any, Callable

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


def is_temporary_of(path: Any, target: str) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.path.basename(os.fspath(path)).startswith(f".{target}.")


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
        import medsight.tasks.base as base

        original_get_task = base.get_task

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

        base.get_task = get_task
    elif kind == "save":
        import safetensors.torch
        import torch

        original_save, original_save_file = torch.save, safetensors.torch.save_file

        def save(obj, f, *args, **kwargs):
            if is_temporary_of(f, target) and reached(kind, target, count):
                buffer = io.BytesIO()
                original_save(obj, buffer)
                write_half(f, buffer.getvalue())
                die()
            return original_save(obj, f, *args, **kwargs)

        def save_file(tensors, filename, *args, **kwargs):
            if is_temporary_of(filename, target) and reached(kind, target, count):
                write_half(filename, safetensors.torch.save(tensors))
                die()
            return original_save_file(tensors, filename, *args, **kwargs)

        torch.save, safetensors.torch.save_file = save, save_file
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
