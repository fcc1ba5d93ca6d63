"""Splits that belong to the data: one protocol for every task.

A data set's test, validation and training cases depend on the data alone, never on a run's ``--seed``:

1. A ``splits_final.json`` beside the data (nnU-Net's file: a list of folds ``{"train": [...], "val": [...]}``,
   each optionally with the same ``"test"`` list) is used as it is, for every task.
2. Otherwise the splits the data itself gives (MedMNIST arrays, split folders, a ``split`` column, VOC
   ``ImageSets``, ``imagesTs``) are kept, and what is missing is carved with a fixed seed (12345, nnU-Net's):
   the test split as one fifth of the labelled cases, then five folds of the rest (or the data's own
   validation split as the only fold). Folds are stratified by class (detection and segmentation: by the
   rarest class a case contains) and grouped by patient, so a patient's cases never straddle two splits.
3. The generated file is written beside the data when ``plan``/``train`` first need it (or, where the data
   folder is read-only, to a cache folder keyed by the data's path), so every later run finds the same cases.

Patients come from a ``patient`` (or ``group``) column in labels.csv, the PatientID of DICOM inputs, or a
``patients.csv`` (``case,patient``) beside the data for any layout.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from medsight.errors import MedsightError

SPLIT_SEED = 12345  # nnU-Net's seed for splits_final.json; deliberately not the run's --seed
NUM_FOLDS = 5
SPLITS_FILE = "splits_final.json"
PATIENTS_FILE = "patients.csv"
SPLIT_NAMES = ("train", "val", "test")


def data_folder(path: Path) -> Path:
    return path.parent if path.is_file() else path


def splits_location(path: Path) -> Path:
    """Where the splits file of a data set lives: DATA/splits_final.json (a MedMNIST or COCO file given as the
    data: NAME.splits_final.json)."""
    path = Path(path)
    # several such files may share one folder (annotations.json is the folder's own, as when DATA is given)
    if path.is_file() and (path.suffix == ".npz" or (path.suffix == ".json" and path.name != "annotations.json")):
        return path.parent / f"{path.stem}.{SPLITS_FILE}"
    return data_folder(path) / SPLITS_FILE


def cache_location(path: Path) -> Path:
    """The per-data cache of a generated splits file, for data in a read-only folder."""
    key = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "medsight" / "splits" / key / SPLITS_FILE


# patients -------------------------------------------------------------------------------------------------
def read_patients_file(path: Path, case_ids: Sequence[str]) -> dict[str, str]:
    """patients.csv (case,patient) -> {case: patient}; a case the data set does not have is an error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = [row for row in csv.reader(handle) if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MedsightError(path, f"cannot be read as CSV ({exc})") from None
    if not table or [c.strip().lower() for c in table[0]] != ["case", "patient"]:
        raise MedsightError(path, "needs the header case,patient")
    known = set(case_ids)
    out: dict[str, str] = {}
    for line, row in enumerate(table[1:], start=2):
        if len(row) != 2 or not row[0].strip() or not row[1].strip():
            raise MedsightError(path, f"line {line} needs a case and a patient")
        case = row[0].strip()
        if case not in known:
            raise MedsightError(path, f"line {line} names case {case}, which the data set does not have")
        if case in out:
            raise MedsightError(path, f"line {line} names case {case} a second time")
        out[case] = row[1].strip()
    return out


def case_groups(dataset) -> list[str]:
    """The patient of every case: patients.csv beside the data, else what the reader found, else the case itself."""
    ids = list(dataset.case_ids)
    groups = list(dataset.groups) if dataset.groups is not None else [None] * len(ids)
    mapping_file = data_folder(Path(dataset.path)) / PATIENTS_FILE
    if mapping_file.is_file():
        mapping = read_patients_file(mapping_file, ids)
        groups = [mapping.get(case, group) for case, group in zip(ids, groups)]
    return [f"case:{case}" if group is None else str(group) for case, group in zip(ids, groups)]


def rarest_present(class_sets: Sequence[Sequence[int]], num_classes: int) -> list[str]:
    """A stratum per case for multi-object labels: the rarest class it contains ("none" for an empty case)."""
    counts = np.zeros(max(num_classes, 1), dtype=int)
    for present in class_sets:
        for c in set(int(v) for v in present):
            counts[c] += 1
    return [str(min(set(int(v) for v in present), key=lambda c: (counts[c], c))) if len(present) else "none"
            for present in class_sets]


# the splits file ------------------------------------------------------------------------------------------
def _names(value: Any, path: Path, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise MedsightError(path, f"{where} must be a list of case names")
    return value


def read_splits_file(path: Path, case_ids: Sequence[str], groups: Sequence[str]) -> tuple[list[dict], list[str] | None]:
    """(folds, test) from a splits file, checked: known cases, no case twice, no patient on both sides."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MedsightError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(raw, list) or not raw or not all(isinstance(f, dict) and {"train", "val"} <= set(f) for f in raw):
        raise MedsightError(path, 'must be a list of folds, each {"train": [...], "val": [...]} (nnU-Net\'s splits_final.json)')
    known = set(case_ids)
    patient = dict(zip(case_ids, groups))
    folds, tests = [], []
    for k, entry in enumerate(raw):
        fold = {name: _names(entry.get(name, []), path, f"fold {k} {name}") for name in SPLIT_NAMES if name in entry}
        seen: dict[str, str] = {}
        for name, cases in fold.items():
            for case in cases:
                if case not in known:
                    raise MedsightError(path, f"fold {k} {name} names case {case}, which the data set does not have")
                if case in seen:
                    where = "twice" if seen[case] == name else f"in both {seen[case]} and {name}"
                    raise MedsightError(path, f"fold {k} lists case {case} {where}")
                seen[case] = name
        sides: dict[str, tuple[str, str]] = {}
        for name, cases in fold.items():
            for case in cases:
                other = sides.setdefault(patient[case], (name, case))
                if other[0] != name:
                    raise MedsightError(path, f"fold {k} puts patient {patient[case].removeprefix('case:')} on both sides "
                                              f"(case {other[1]} in {other[0]}, case {case} in {name})")
        tests.append(fold.pop("test", None))
        folds.append(fold)
    given_tests = [t for t in tests if t is not None]
    if given_tests and any(sorted(t) != sorted(given_tests[0]) for t in tests):
        raise MedsightError(path, "gives a different test list in different folds (the test split is shared)")
    return folds, (given_tests[0] if given_tests else None)


def write_splits_file(path: Path, folds: list[dict], test: list[str]) -> None:
    from medsight.jsonio import save_json

    entries = [{**fold, **({"test": test} if test else {})} for fold in folds]
    path.parent.mkdir(parents=True, exist_ok=True)
    save_json(path, entries)


# carving --------------------------------------------------------------------------------------------------
def grouped_folds(positions: np.ndarray, strata: np.ndarray, groups: np.ndarray, n_folds: int) -> list[np.ndarray]:
    """Held-out positions of each of n_folds stratified, grouped folds (scikit-learn's StratifiedGroupKFold)."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups[positions]))
    n_folds = min(n_folds, n_groups)
    if np.unique(strata[positions], return_counts=True)[1].max() < n_folds:
        strata = np.full(len(strata), "all")  # every class is rarer than the folds: group only
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=SPLIT_SEED)
    with warnings.catch_warnings():  # a class rarer than the number of folds is spread as well as it can be
        warnings.simplefilter("ignore", UserWarning)
        parts = [positions[held] for _, held in splitter.split(positions, strata[positions], groups[positions])]
    return [np.sort(p) for p in parts]


def generate(case_ids: Sequence[str], given: dict[str, np.ndarray], strata: np.ndarray,
             groups: np.ndarray) -> tuple[list[dict], list[str]]:
    """Folds and test split for a data set without a splits file: the data's own splits, the rest carved."""
    ids = np.asarray(case_ids)
    train = np.asarray(given.get("train", []), dtype=int)
    test = np.asarray(given.get("test", []), dtype=int)
    if "test" not in given and len(set(groups[train])) >= 3:
        test = grouped_folds(train, strata, groups, NUM_FOLDS)[0]
        train = np.setdiff1d(train, test)
    if "val" in given:
        folds = [{"train": ids[train].tolist(), "val": ids[np.asarray(given["val"], dtype=int)].tolist()}]
    elif len(set(groups[train])) >= 2:
        held = grouped_folds(train, strata, groups, NUM_FOLDS)
        folds = [{"train": ids[np.setdiff1d(train, h)].tolist(), "val": ids[h].tolist()} for h in held]
    else:  # one patient: nothing can be held out, so validation sees the training cases
        folds = [{"train": ids[train].tolist(), "val": ids[train].tolist()}]
    return folds, ids[test].tolist()


def _matches(folds: list[dict], test: list[str], case_ids: Sequence[str], pool: set[str]) -> bool:
    """A cached generated file still fits the data: it names exactly the labelled cases, all of them known."""
    named = set(test) | {c for fold in folds for part in fold.values() for c in part}
    return named == pool and named <= set(case_ids)


def assign_splits(dataset, strata: Callable[[], Sequence[str]] | Sequence[str] | None = None, fold: int = 0) -> None:
    """Set dataset.splits (train/val of the fold, test) and dataset.split_info from the protocol above.

    dataset.splits holds the splits the data gives on entry ("train" = every other labelled case); entries
    other than train/val/test (unlabelled cases) pass through.
    """
    ids = list(dataset.case_ids)
    given = {k: np.asarray(v, dtype=int) for k, v in dataset.splits.items() if k in SPLIT_NAMES and len(v)}
    others = {k: v for k, v in dataset.splits.items() if k not in SPLIT_NAMES}
    given.setdefault("train", np.zeros(0, dtype=int))
    groups = np.asarray(case_groups(dataset))
    pool = {ids[i] for part in given.values() for i in part}
    beside = splits_location(Path(dataset.path))
    cached = cache_location(Path(dataset.path))
    info: dict[str, Any] = {"seed": SPLIT_SEED, "given": sorted(k for k in given if k != "train")}
    if beside.is_file():
        folds, test = read_splits_file(beside, ids, groups)
        if test is None:
            test = [ids[i] for i in given.get("test", [])]
        info.update(origin="file", file=str(beside), written=True)
    else:
        folds = test = None
        if cached.is_file():
            try:
                folds, test = read_splits_file(cached, ids, groups)
                test = test or []
            except MedsightError:
                folds = None
            if folds is not None and not _matches(folds, test, ids, pool):
                folds = None  # the data changed since the cache was written: carve again
        if folds is not None:
            info.update(origin="generated", file=str(cached), written=True)
        else:
            values = strata() if callable(strata) else strata
            labels = np.asarray([str(v) for v in values]) if values is not None else np.full(len(ids), "all")
            folds, test = generate(ids, given, labels, groups)
            carved = "test" not in given or "val" not in given
            info.update(origin="generated" if carved else "data", file=str(beside), written=not carved)
    if not 0 <= fold < len(folds):
        raise MedsightError(info["file"], f"has {len(folds)} fold(s), so --fold must be between 0 and "
                                          f"{len(folds) - 1}, not {fold}")
    position = {case: i for i, case in enumerate(ids)}
    splits = {name: np.asarray(sorted(position[c] for c in folds[fold][name]), dtype=int) for name in ("train", "val")}
    if test:
        splits["test"] = np.asarray(sorted(position[c] for c in test), dtype=int)
    dataset.splits = {**splits, **others}
    dataset.split_info = {**info, "fold": fold, "num_folds": len(folds), "folds": folds, "test": list(test)}


def writable(folder: Path) -> bool:
    """Whether medsight may write into a data folder: the process may, and the folder is not marked read-only
    (no write bit for anyone; root could write there, but whoever shared the data meant it to stay as it is)."""
    try:
        marked = not folder.stat().st_mode & 0o222
    except OSError:
        return False
    return os.access(folder, os.W_OK) and not marked


def save_generated(dataset, echo: Callable[[str], None] | None = None) -> Path | None:
    """Write a generated splits file where later runs of the same data find it; say where. None if nothing to write."""
    info = getattr(dataset, "split_info", None)
    if not info or info.get("written", True):
        return None
    target = Path(info["file"])
    try:
        if not writable(target.parent):
            raise PermissionError(target.parent)
        write_splits_file(target, info["folds"], info["test"])
    except OSError:
        target = cache_location(Path(dataset.path))
        write_splits_file(target, info["folds"], info["test"])
        (echo or _stderr)(f"medsight: {data_folder(Path(dataset.path))} is read-only; its splits "
                          f"(seed {SPLIT_SEED}) are kept in {target}")
    else:
        (echo or _stderr)(f"medsight: wrote the splits (seed {SPLIT_SEED}, {info['num_folds']} fold(s)) to {target}")
    info.update(file=str(target), written=True)
    return target


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# uses of the splits ---------------------------------------------------------------------------------------
def all_training_cases(dataset) -> np.ndarray:
    """Every labelled training case of every fold (train + val): what the plan is fingerprinted on."""
    info = getattr(dataset, "split_info", None)
    if not info:
        return np.union1d(dataset.splits["train"], dataset.splits.get("val", []))
    position = {case: i for i, case in enumerate(dataset.case_ids)}
    cases = {c for fold in info["folds"] for part in fold.values() for c in part}
    return np.asarray(sorted(position[c] for c in cases), dtype=int)


def planning_view(dataset):
    """The data set seen by the planner: every fold's training cases as "train", so all folds share one plan."""
    view = replace(dataset)
    view.splits = {**dataset.splits, "train": all_training_cases(dataset)}
    return view


def as_test_set(dataset) -> None:
    """A folder given to `evaluate --data`: every labelled case is the test split, unless the data or a splits
    file says which cases are the test."""
    info = getattr(dataset, "split_info", {}) or {}
    if info.get("origin") == "file" or "test" in info.get("given", []):
        return
    labelled = np.unique(np.concatenate([np.asarray(dataset.splits[k], dtype=int) for k in SPLIT_NAMES if k in dataset.splits]))
    others = {k: v for k, v in dataset.splits.items() if k not in SPLIT_NAMES}
    dataset.splits = {"test": labelled, **others}
    dataset.split_info = {**info, "origin": "whole folder as test", "written": True, "folds": [], "test":
                          [dataset.case_ids[i] for i in labelled]}


def describe(dataset) -> dict[str, Any]:
    """What `check` prints and dataset.json records about the split: where it comes from and its cases."""
    info = getattr(dataset, "split_info", None) or {}
    out = {k: info[k] for k in ("origin", "file", "seed", "fold", "num_folds") if k in info}
    if info.get("origin") == "generated" and not info.get("written", True):
        out["file"] = f"{info['file']} (written by the first plan or train)"
    out["cases"] = {k: [dataset.case_ids[i] for i in v] for k, v in dataset.splits.items()}
    return out


# leaks between given splits ----------------------------------------------------------------------------------
def file_digest(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in Path(path).rglob("*") if p.is_file()) if Path(path).is_dir() else [Path(path)]
        for file in files:
            with open(file, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def leak_warnings(dataset, digests: Sequence[str] | None = None, names: Sequence[str] | None = None) -> list[str]:
    """Warnings for a patient, or an identical image (same content hash), found in two of the splits."""
    split_of: dict[int, str] = {}
    for name in SPLIT_NAMES:
        for i in dataset.splits.get(name, []):
            split_of.setdefault(int(i), name)
    names = list(names or dataset.case_ids)
    out = []
    for label, keys in (("patient", case_groups(dataset)), ("identical image", digests)):
        if keys is None:
            continue
        seen: dict[str, dict[str, int]] = {}
        for i, split in split_of.items():
            if label == "patient" and keys[i].startswith("case:"):
                continue
            seen.setdefault(keys[i], {}).setdefault(split, i)
        for key, where in seen.items():
            if len(where) > 1:
                cases = ", ".join(f"{names[i]} ({split})" for split, i in where.items())
                what = f"patient {key}" if label == "patient" else "an identical image"
                out.append(f"{what} appears in {len(where)} splits: {cases}")
    return out
