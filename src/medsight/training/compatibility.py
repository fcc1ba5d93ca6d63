"""The tensor-by-tensor fit of an --init source to a new model, printed before training starts.

Every tensor of the model is matched (same name, or an aligned one, and the same shape), a shape mismatch
(the name is in the source with another shape) or missing (not in the source); a source tensor with no
place in the model is unexpected. Matched tensors are counted per module, the others listed one by one,
so that a head of another size or a renamed layer is seen at once instead of after training.
"""

from __future__ import annotations

from typing import Mapping

import torch

LISTED = 8  # tensors listed per kind before "and N more"


def _shape(tensor: torch.Tensor) -> str:
    return "(" + ",".join(map(str, tensor.shape)) + ")"


def _module(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def compatibility(own: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor],
                  pairs: Mapping[str, str]) -> dict[str, list[tuple[str, str]]]:
    """{matched, shape mismatch, missing, unexpected: [(tensor, shapes)]} for a model and its source."""
    kinds: dict[str, list[tuple[str, str]]] = {"matched": [], "shape mismatch": [], "missing": [], "unexpected": []}
    for name, tensor in own.items():
        if name in pairs:
            kinds["matched"].append((name, _shape(tensor)))
        elif name in source:
            kinds["shape mismatch"].append((name, f"model {_shape(tensor)}, source {_shape(source[name])}"))
        else:
            kinds["missing"].append((name, _shape(tensor)))
    used = set(pairs.values())
    kinds["unexpected"] = [(name, _shape(t)) for name, t in source.items() if name not in used and name not in own]
    return kinds


def format_compatibility(kinds: dict[str, list[tuple[str, str]]], source: str) -> str:
    """A compact table: one line per kind; matched tensors counted per module, the others listed."""
    total = sum(len(kinds[k]) for k in ("matched", "shape mismatch", "missing"))
    lines = [f"tensor fit of {source} to the new model ({total} tensors):"]
    for kind, rows in kinds.items():
        if kind == "matched":
            modules: dict[str, int] = {}
            for name, _ in rows:
                modules[_module(name)] = modules.get(_module(name), 0) + 1
            detail = ", ".join(f"{m}.* {n}" for m, n in modules.items())
        else:
            detail = "; ".join(f"{name} {shapes}" for name, shapes in rows[:LISTED])
            if len(rows) > LISTED:
                detail += f"; and {len(rows) - LISTED} more"
        lines.append(f"  {kind:<15}{len(rows):>5}  {detail}".rstrip())
    return "\n".join(lines)
