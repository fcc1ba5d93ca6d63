"""The package's layers only look down: parsed from every module's imports, function-level ones included.

A module belongs to a unit: its subpackage (``medsight.io.images`` -> ``io``) or, for a module at the top of
the package, itself (``medsight.run`` -> ``run``). A unit may import units of its own layer or below, never
above, and the units never import each other in a circle. ``api`` is the facade over the library and ``cli``
parses arguments for it: nothing below them imports either.
"""

from __future__ import annotations

import ast
from pathlib import Path

import medsight

PACKAGE = Path(medsight.__file__).parent

LAYERS: list[set[str]] = [
    {"", "errors", "jsonio", "config", "progress", "plugins", "device"},  # "" is medsight/__init__.py (the version)
    {"data"},  # the data set contract, preprocessing steps, augmentation
    {"io"},  # readers and the format registry, which return data's TaskDataset
    {"models", "losses", "metrics"},
    {"report", "explain"},  # HTML reports and plots; Grad-CAM and overlays
    {"tasks"},  # one subpackage per task, and the task registry
    {"run", "packed"},  # the run folder, and loading a trained model from it (or from a packed run)
    {"sharing"},  # model cards and writing packed runs
    {"training"},
    {"evaluation", "inference", "export", "serving", "synthetic", "dicom", "tracking"},
    {"api"},
    {"demo"},
    {"cli", "__main__"},
]
LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}
FACADES = {"api", "cli"}


def unit_of(module: str) -> str:
    parts = module.split(".")[1:]
    return parts[0] if parts else ""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) for every medsight import in the file, wherever it stands (functions, TYPE_CHECKING)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import: resolve against this module's package
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # "from medsight import api" imports the module medsight.api
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / Path(*candidate.split("."))).is_dir()
                found.append((node.lineno, candidate if is_module else base))
    return [(line, name) for line, name in found if name == "medsight" or name.startswith("medsight.")]


def import_graph() -> list[tuple[str, int, str]]:
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            edges.append((module, line, target))
    return edges


def test_every_unit_has_a_layer():
    units = {unit_of(module) for module, _, _ in import_graph()} | {unit_of(target) for _, _, target in import_graph()}
    assert units - set(LAYER_OF) == set(), "place new subpackages or top-level modules in LAYERS"


def test_no_unit_imports_a_layer_above_it():
    upward = [f"{module}:{line} imports {target}" for module, line, target in import_graph()
              if LAYER_OF[unit_of(target)] > LAYER_OF[unit_of(module)]]
    assert upward == []


def test_nothing_below_the_facades_imports_them():
    facade_level = min(LAYER_OF[f] for f in FACADES)
    offenders = [f"{module}:{line} imports {target}" for module, line, target in import_graph()
                 if unit_of(target) in FACADES and LAYER_OF[unit_of(module)] < facade_level]
    assert offenders == []


def test_units_import_each_other_without_cycles():
    depends: dict[str, set[str]] = {}
    for module, _, target in import_graph():
        if unit_of(module) != unit_of(target):
            depends.setdefault(unit_of(module), set()).add(unit_of(target))
    cycles = []

    def visit(unit: str, trail: list[str]) -> None:
        for nxt in sorted(depends.get(unit, ())):
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif len(trail) < len(LAYER_OF):
                visit(nxt, trail + [nxt])

    for unit in sorted(depends):
        visit(unit, [unit])
    assert cycles == []


def test_the_checks_see_function_level_and_relative_imports():
    source = "def f():\n    from medsight.api import train\n    from . import images\n"
    found = imported_modules(ast.parse(source), "medsight.io.formats", False)
    assert found == [(2, "medsight.api"), (3, "medsight.io.images")]
