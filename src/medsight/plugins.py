"""Tasks and formats defined outside medsight: the modules named in MEDSIGHT_PLUGINS, and entry points.

A plugin is a module that calls ``medsight.tasks.registry.register_task`` and
``medsight.io.formats.register_format`` (and ``medsight.models.register_model``) when imported. medsight
imports it the first time a task or format is looked up: modules named in the environment variable
MEDSIGHT_PLUGINS (comma-separated), and those an installed package declares under the entry point group
``medsight.plugins``.
"""

from __future__ import annotations

import importlib
import os
from importlib.metadata import entry_points

from medsight.errors import MedsightError

ENV = "MEDSIGHT_PLUGINS"
GROUP = "medsight.plugins"

_imported: set[str] = set()
_entry_points_read = False


def load_plugins() -> None:
    """Import every plugin not imported yet; a plugin that is not there fails with one line."""
    global _entry_points_read
    names = [name.strip() for name in os.environ.get(ENV, "").split(",") if name.strip()]
    for name in names:
        if name in _imported:
            continue
        _imported.add(name)
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                _imported.discard(name)
                raise MedsightError(None, f"{ENV} names the module {name!r}, which is not importable") from None
            raise
    if not _entry_points_read:
        _entry_points_read = True
        for point in entry_points(group=GROUP):
            if point.value not in _imported:
                _imported.add(point.value)
                point.load()
