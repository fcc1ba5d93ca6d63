"""Coded concepts for class names as a data set or a user gives them (dataset.json "label_codes", or a
--codes file): {"class name": {"category": [scheme, value, meaning], "type": [scheme, value, meaning]}}."""

from __future__ import annotations

from typing import Any

from medsight.errors import MedsightError


def check_mapping(mapping: Any, where: Any, names: Any = None) -> dict[str, dict[str, Any]]:
    """mapping if it is {class name: {"category": [...], "type": [...]}} (names: the classes it may name)."""
    if not isinstance(mapping, dict):
        raise MedsightError(where, "codes must be a JSON object {class name: {category: [...], type: [...]}}")
    for name, entry in mapping.items():
        if names is not None and name not in names:
            raise MedsightError(where, f"codes name class {name!r}, which is not a label ({', '.join(names)})")
        for key in ("category", "type"):
            value = entry.get(key) if isinstance(entry, dict) else None
            if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, str) and v for v in value)):
                raise MedsightError(where, f"class {name!r}: {key!r} must be [coding scheme, code value, meaning]")
    return mapping
