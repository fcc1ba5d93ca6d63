"""The LUNA16 layout: CT volumes named by series UID, nodules in annotations.csv in world coordinates (mm).

    DATA/annotations.csv        seriesuid,coordX,coordY,coordZ,diameter_mm   (CSVFILES/ is looked in too)
    DATA/candidates.csv         seriesuid,coordX,coordY,coordZ,class          (optional)
    DATA/<uid>.mhd (+ .raw)     or subset0/ ... subset9/<uid>.mhd; any volume SimpleITK reads (.mha, .nii.gz, .nrrd)

Each nodule becomes a box of its diameter around its centre (clipped to the scan). Scans without a row are
scans without nodules. Rows naming a scan that is not in the folder are counted, not kept (LUNA16 ships one
annotations.csv for its ten subsets). Candidates of class 0 are kept as hard negatives for patch sampling.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import is_hidden
from medsight.io.detection import DetectionDataset, finish_splits, given_splits
from medsight.io.geometry import read_geometry

VOLUME_SUFFIXES = (".mhd", ".mha", ".nii.gz", ".nii", ".nrrd")
ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")


def find_csv(path: Path, name: str) -> Path | None:
    return next((p for p in (path / name, path / "CSVFILES" / name) if p.is_file()), None)


def volume_uid(file: Path) -> str | None:
    name = file.name
    return next((name[: -len(s)] for s in VOLUME_SUFFIXES if name.endswith(s)), None)


def find_scans(path: Path) -> dict[str, Path]:
    """Series UID -> volume file, in the folder itself and in subset*/ folders."""
    folders = [path] + sorted(p for p in path.iterdir() if p.is_dir() and p.name.lower().startswith("subset"))
    scans: dict[str, Path] = {}
    for folder in folders:
        for file in sorted(folder.iterdir()):
            uid = volume_uid(file) if file.is_file() and not is_hidden(file.name) else None
            if uid is None:
                continue
            if uid in scans:
                raise MedsightError(file, f"series {uid} is also in {scans[uid]}")
            scans[uid] = file
    return scans


def is_luna16(path: Path) -> bool:
    if find_csv(path, "annotations.csv") is None:
        return False
    # utf-8-sig: a spreadsheet saves the CSV with a byte-order mark, which would hide the first column name
    with open(find_csv(path, "annotations.csv"), newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    return tuple(h.strip() for h in header[:5]) == ANNOTATION_COLUMNS


def read_rows(csv_path: Path, columns: tuple[str, ...]) -> list[tuple[int, str, list[float]]]:
    """(line number, series uid, numbers) per row, after checking the header and every value."""
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader, [])]
        if tuple(header[: len(columns)]) != columns:
            raise MedsightError(csv_path, f"header is {','.join(header)!r}; expected {','.join(columns)}")
        rows = []
        for line, row in enumerate(reader, 2):
            if not any(v.strip() for v in row):
                continue
            if len(row) < len(columns):
                raise MedsightError(csv_path, f"line {line} has {len(row)} fields; expected {len(columns)}")
            try:
                numbers = [float(v) for v in row[1: len(columns)]]
            except ValueError:
                raise MedsightError(csv_path, f"line {line} has a value that is not a number ({','.join(row)})") from None
            if not np.all(np.isfinite(numbers)):
                raise MedsightError(csv_path, f"line {line} has a value that is not finite ({','.join(row)})")
            rows.append((line, row[0].strip(), numbers))
    return rows


def read_luna16(path: Path, fold: int = 0) -> DetectionDataset:
    path = Path(path)
    annotations = find_csv(path, "annotations.csv")
    if annotations is None:
        raise MedsightError(path, "has no annotations.csv (seriesuid,coordX,coordY,coordZ,diameter_mm)")
    scans = find_scans(path)
    if not scans:
        raise MedsightError(path, "holds no volumes (<seriesuid>.mhd or subset*/<seriesuid>.mhd) beside annotations.csv")
    uids = sorted(scans)
    row_of = {uid: k for k, uid in enumerate(uids)}
    geometries = [read_geometry(scans[uid]) for uid in uids]
    for uid, geometry in zip(uids, geometries):
        if len(geometry.size) != 3:
            raise MedsightError(scans[uid], f"is a {len(geometry.size)}D image; LUNA16 scans are volumes")
    boxes: list[list[np.ndarray]] = [[] for _ in uids]
    diameters: list[list[float]] = [[] for _ in uids]
    elsewhere = 0
    for line, uid, (x, y, z, diameter) in read_rows(annotations, ANNOTATION_COLUMNS):
        if uid not in row_of:
            elsewhere += 1
            continue
        if diameter <= 0:
            raise MedsightError(annotations, f"line {line}: diameter_mm is {diameter:g}; it must be positive")
        k = row_of[uid]
        geometry = geometries[k]
        centre = geometry.to_voxel([x, y, z])[0]
        shape = np.asarray(geometry.shape, float)
        if np.any(centre < 0) or np.any(centre > shape):
            raise MedsightError(annotations, f"line {line}: nodule centre ({x:g}, {y:g}, {z:g}) mm lies outside scan {uid} "
                                             f"({scans[uid].name})")
        half = diameter / 2 / np.asarray(geometry.array_spacing)  # a sphere stays a sphere under the direction
        boxes[k].append(np.concatenate([np.maximum(centre - half, 0), np.minimum(centre + half, shape)]))
        diameters[k].append(diameter)
    negatives: list[list[np.ndarray]] = [[] for _ in uids]
    candidates = find_csv(path, "candidates.csv")
    if candidates is not None:
        for line, uid, (x, y, z, label) in read_rows(candidates, CANDIDATE_COLUMNS):
            if label not in (0, 1):
                raise MedsightError(candidates, f"line {line}: class is {label:g}; expected 0 or 1")
            if uid in row_of and label == 0:
                centre = geometries[row_of[uid]].to_voxel([x, y, z])[0]
                if np.all(centre >= 0) and np.all(centre <= geometries[row_of[uid]].shape):
                    negatives[row_of[uid]].append(centre)
    return finish_splits(DetectionDataset(
        path=path, format="luna16", task="detection", spatial_dims=3, splits=given_splits(len(uids), {}),
        case_ids=uids, channels=["CT"], classes=["nodule"], sources=[[scans[u]] for u in uids],
        boxes=[np.asarray(b, dtype=np.float64).reshape(-1, 6) for b in boxes],
        labels=[np.zeros(len(b), dtype=np.int64) for b in boxes], shapes=[g.shape for g in geometries],
        geometries=geometries, diameters=[np.asarray(d, dtype=np.float64) for d in diameters],
        hard_negatives=[np.asarray(n, dtype=np.float64).reshape(-1, 3) for n in negatives],
        annotations_without_scan=elsewhere,
    ), fold)
