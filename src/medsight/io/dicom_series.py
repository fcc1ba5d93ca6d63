"""Study folders (any tree of DICOM files) grouped by SeriesInstanceUID, one series chosen, read with geometry.

Headers are read without pixels, so listing a study costs little. A series is chosen by a rule: an explicit
SeriesInstanceUID, or the image series of a modality whose description matches a pattern, the one with the
most slices first. Pixels are decoded by pydicom and its plugins (pylibjpeg: JPEG, JPEG-LS, JPEG 2000, RLE).
A series whose slices do not make one regular volume (missing slices, uneven spacing, mixed orientations)
is refused with one line naming the series and the problem.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from medsight.errors import MedsightError
from medsight.io.images import is_hidden

# Storage classes that hold results or documents, not images to predict (SEG, SR, RTSTRUCT, presentation states).
NON_IMAGE_MODALITIES = {"SEG", "SR", "RTSTRUCT", "PR", "KO", "RTPLAN", "RTDOSE", "DOC", "REG"}
SPACING_TOLERANCE = 0.01  # relative: slice gaps may differ by 1% (rounding in ImagePositionPatient)
ORIENTATION_TOLERANCE = 1e-3
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass(frozen=True)
class SeriesRule:
    """How to choose one series of a study: by UID, or modality + description pattern, most slices first."""

    uid: str | None = None
    modality: str | None = None
    description: str | None = None  # a regular expression searched in SeriesDescription (case-insensitive)

    @classmethod
    def from_plan(cls, plan: dict[str, Any], uid: str | None = None) -> "SeriesRule":
        rule = plan.get("dicom_series") or {}
        return cls(uid=uid or rule.get("uid"), modality=rule.get("modality"), description=rule.get("description"))


@dataclass
class Series:
    """One series of a study: its UID, what it is and its files (headers only)."""

    uid: str
    modality: str
    description: str
    number: int | None
    headers: list[Any] = field(default_factory=list)  # pydicom Datasets read without pixels
    files: list[Path] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(_as_int(h.get("NumberOfFrames"), 1) for h in self.headers)

    @property
    def is_image(self) -> bool:
        return self.modality not in NON_IMAGE_MODALITIES and all("Rows" in h for h in self.headers)

    def summary(self) -> dict[str, Any]:
        first = self.headers[0]
        return {"uid": self.uid, "modality": self.modality, "description": self.description, "number": self.number,
                "files": len(self.files), "frames": self.frames,
                "size": [_as_int(first.get("Rows"), 0), _as_int(first.get("Columns"), 0)] if self.is_image else None,
                "transfer_syntax": str(getattr(first, "file_meta", {}).get("TransferSyntaxUID", "")) or None}


def _as_int(value: Any, default: int) -> int:
    """A header's integer, or default where it is missing or broken (the geometry check names the problem)."""
    try:
        return int(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default


_rule: contextvars.ContextVar[SeriesRule] = contextvars.ContextVar("series_rule", default=SeriesRule())


@contextlib.contextmanager
def series_rule(rule: SeriesRule) -> Iterator[None]:
    """Within this block, study folders are read with this rule (set by the predictor from the run and --series)."""
    token = _rule.set(rule)
    try:
        yield
    finally:
        _rule.reset(token)


def current_rule() -> SeriesRule:
    return _rule.get()


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No pydicom warnings: a non-conformant value is the geometry check's business, and pydicom's warnings
    (given when a value is first read, not when the file is) would break the one-line answer."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def read_header(path: Path, **options: Any) -> Any:
    """pydicom's dataset of path, read quietly (see quiet)."""
    import pydicom

    with quiet():
        return pydicom.dcmread(path, **options)


def dicom_files(root: Path) -> list[Path]:
    """Every DICOM file (by its preamble) under root, hidden files and folders left out, in a stable order."""
    from medsight.io.images import is_dicom_file

    found: list[Path] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        found.extend(Path(folder) / name for name in sorted(files)
                     if not is_hidden(name) and is_dicom_file(Path(folder) / name))
    return found


def scan_study(root: str | Path) -> list[Series]:
    """The series of a DICOM tree (or one file), grouped by SeriesInstanceUID, largest first."""
    with quiet():
        return _scan_study(Path(root))


def _scan_study(root: Path) -> list[Series]:
    root = Path(root)
    files = [root] if root.is_file() else dicom_files(root)
    groups: dict[str, Series] = {}
    for path in files:
        try:
            header = read_header(path, stop_before_pixels=True)
            uid = str(header.get("SeriesInstanceUID", "") or f"(no SeriesInstanceUID: {path.name})")
            number = header.get("SeriesNumber")
            number = int(number) if number not in (None, "") else None
            modality, description = str(header.get("Modality", "") or "?"), str(header.get("SeriesDescription", "") or "")
        except Exception as exc:  # pydicom raises many types for broken files, some only when a value is read
            raise MedsightError(path, f"is not a readable DICOM file ({str(exc).splitlines()[0][:160]})") from None
        series = groups.get(uid)
        if series is None:
            series = groups[uid] = Series(uid, modality, description, number)
        series.headers.append(header)
        series.files.append(path)
    if not groups:
        raise MedsightError(root, "is a folder without a DICOM series (no DICOM files in it)")
    return sorted(groups.values(), key=lambda s: (-s.frames, s.number if s.number is not None else 1 << 30, s.uid))


def choose_series(found: Sequence[Series], rule: SeriesRule, where: Path) -> Series:
    """The series the rule picks, or one line saying which series there are and why none fits."""
    if rule.uid:
        for series in found:
            if series.uid == rule.uid:
                return series
        raise MedsightError(where, f"has no series {rule.uid} (it has {_listing(found)})")
    candidates = [s for s in found if s.is_image]
    if rule.modality:
        candidates = [s for s in candidates if s.modality.upper() == rule.modality.upper()]
    if rule.description:
        pattern = re.compile(rule.description, re.IGNORECASE)
        candidates = [s for s in candidates if pattern.search(s.description)]
    if not candidates:
        wanted = " ".join(x for x in (rule.modality and f"modality {rule.modality}",
                                      rule.description and f"description ~ {rule.description!r}") if x)
        raise MedsightError(where, f"has no image series{' of ' + wanted if wanted else ''} (it has {_listing(found)})")
    return candidates[0]  # found is sorted by slices, most first


def _listing(found: Sequence[Series]) -> str:
    return "; ".join(f"{s.uid} {s.modality} {s.description!r} {s.frames} frames" for s in found[:6]) + \
        (f"; and {len(found) - 6} more" if len(found) > 6 else "")


def describe_study(root: str | Path, rule: SeriesRule = SeriesRule()) -> dict[str, Any]:
    """What `medsight check` prints for a DICOM tree: every series, the one the rule would use and its problems."""
    root = Path(root)
    found = scan_study(root)
    with quiet():
        return _describe(root, found, rule)


def _describe(root: Path, found: list[Series], rule: SeriesRule) -> dict[str, Any]:
    result: dict[str, Any] = {"path": str(root), "format": "dicom", "series": [s.summary() for s in found]}
    try:
        chosen = choose_series(found, rule, root)
    except MedsightError as exc:
        result["chosen"], result["problem"] = None, exc.problem
        return result
    result["chosen"] = chosen.uid
    try:
        slice_geometry(chosen, root)
    except MedsightError as exc:
        result["problem"] = exc.problem
    return result


@dataclass
class SliceGeometry:
    """The volume a series makes: its headers sorted along the slice normal, spacing, origin and direction."""

    order: list[int]  # indices into series.headers (a multi-frame file: frame indices)
    spacing: tuple[float, float, float]  # x (columns), y (rows), z (slices), mm
    origin: tuple[float, float, float]
    direction: tuple[float, ...]  # SimpleITK's row-major 3x3, columns are the axes' directions
    multiframe: bool = False


def _frame_planes(series: Series) -> tuple[list[np.ndarray], list[np.ndarray], list[tuple[float, float]], bool]:
    """Per frame: orientation (6), position (3), pixel spacing; a multi-frame file's come from its functional groups."""
    headers = series.headers
    multi = [h for h in headers if int(getattr(h, "NumberOfFrames", 1) or 1) > 1]
    if multi:
        if len(headers) > 1:
            raise MedsightError(None, f"series {series.uid} mixes {len(multi)} multi-frame file(s) with "
                                      f"{len(headers) - len(multi)} other file(s); give one multi-frame file per series")
        header = multi[0]
        frames = int(header.NumberOfFrames)
        shared = header.get("SharedFunctionalGroupsSequence", [None])[0]
        per_frame = header.get("PerFrameFunctionalGroupsSequence")
        if per_frame is None or len(per_frame) != frames:
            raise MedsightError(None, f"series {series.uid} is a multi-frame file without per-frame positions "
                                      "(PerFrameFunctionalGroupsSequence); it cannot be placed in space")

        def item(group, name, attribute):
            for source in (group, shared):
                if source is not None and name in source and attribute in source[name][0]:
                    return source[name][0][attribute].value
            raise MedsightError(None, f"series {series.uid} is a multi-frame file whose frames lack {attribute}")

        orientations = [np.asarray(item(g, "PlaneOrientationSequence", "ImageOrientationPatient"), float) for g in per_frame]
        positions = [np.asarray(item(g, "PlanePositionSequence", "ImagePositionPatient"), float) for g in per_frame]
        spacings = [tuple(map(float, item(g, "PixelMeasuresSequence", "PixelSpacing"))) for g in per_frame]
        return orientations, positions, spacings, True
    orientations, positions, spacings = [], [], []
    if len(headers) == 1 and "ImagePositionPatient" not in headers[0]:
        # a projection image (radiograph, NM): no place in the patient, a plane of pixels
        spacing = headers[0].get("PixelSpacing") or headers[0].get("ImagerPixelSpacing") or (1.0, 1.0)
        return [np.asarray(AXIAL)], [np.zeros(3)], [tuple(map(float, spacing))], False
    for header, path in zip(headers, series.files):
        for attribute in ("ImageOrientationPatient", "ImagePositionPatient"):
            if attribute not in header:
                raise MedsightError(path, f"(series {series.uid}) has no {attribute}; it cannot be placed in a volume")
        orientations.append(np.asarray(header.ImageOrientationPatient, float))
        positions.append(np.asarray(header.ImagePositionPatient, float))
        spacing = header.get("PixelSpacing") or header.get("ImagerPixelSpacing") or (1.0, 1.0)
        spacings.append(tuple(map(float, spacing)))
    return orientations, positions, spacings, False


def slice_geometry(series: Series, where: Path) -> SliceGeometry:
    """Sort the slices along their normal and check they make one regular volume; one line if they do not."""
    try:
        return _slice_geometry(series, where)
    except MedsightError:
        raise
    except Exception as exc:  # a header value of the wrong kind or length (a broken or hand-made file)
        raise MedsightError(where, f"series {series.uid} has unreadable geometry headers "
                                   f"({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})") from None


def _slice_geometry(series: Series, where: Path) -> SliceGeometry:
    if not series.is_image:
        raise MedsightError(where, f"series {series.uid} is a {series.modality}, not an image series")
    try:
        orientations, positions, spacings, multiframe = _frame_planes(series)
    except MedsightError as exc:
        raise MedsightError(exc.path or where, exc.problem) from None
    sizes = {(int(h.Rows), int(h.Columns)) for h in series.headers}
    if len(sizes) > 1:
        raise MedsightError(where, f"series {series.uid} mixes slice sizes {sorted(sizes)}")
    reference = orientations[0]
    if any(np.abs(o - reference).max() > ORIENTATION_TOLERANCE for o in orientations):
        kinds = len({tuple(np.round(o, 3)) for o in orientations})
        raise MedsightError(where, f"series {series.uid} mixes {kinds} slice orientations; it is not one volume")
    if len({s for s in spacings}) > 1:
        raise MedsightError(where, f"series {series.uid} mixes pixel spacings {sorted(set(spacings))[:3]}")
    row, column = reference[:3], reference[3:]
    normal = np.cross(row, column)
    heights = np.asarray([float(p @ normal) for p in positions])
    order = [int(i) for i in np.argsort(heights, kind="stable")]
    sorted_heights = heights[order]
    gaps = np.diff(sorted_heights)
    slice_spacing = 1.0
    if len(gaps):
        if np.any(gaps < 1e-4):
            raise MedsightError(where, f"series {series.uid} has {int(np.sum(gaps < 1e-4)) + 1} slices at the same "
                                       "position (duplicates or several acquisitions in one series)")
        step = float(np.median(gaps))
        uneven = np.abs(gaps - step) > SPACING_TOLERANCE * step + 1e-3
        if uneven.any():
            multiples = gaps[uneven] / step
            if np.all((np.abs(multiples - np.round(multiples)) < 0.05) & (multiples > 1.5)):
                first = int(np.argmax(uneven))
                missing = int(np.round(multiples).sum() - len(multiples))
                raise MedsightError(where, f"series {series.uid} is missing {missing} slice(s), the first between "
                                           f"positions {sorted_heights[first]:.2f} and {sorted_heights[first + 1]:.2f} mm "
                                           f"(slices are {step:.2f} mm apart elsewhere)")
            raise MedsightError(where, f"series {series.uid} has uneven slice spacing ({gaps.min():.2f} to "
                                       f"{gaps.max():.2f} mm); resample it into one regular volume first")
        slice_spacing = float(np.mean(gaps))
    # DICOM PixelSpacing is (row spacing, column spacing) = (y, x)
    row_spacing, column_spacing = spacings[0]
    direction = tuple(np.stack([row, column, normal], axis=1).ravel().tolist())
    origin = tuple(float(v) for v in positions[order[0]])
    return SliceGeometry(order, (column_spacing, row_spacing, slice_spacing), origin, direction, multiframe)


def read_series(series: Series, where: Path):
    """The series as a medsight Image (rescaled to stored units such as HU), slices in geometry order."""
    import SimpleITK as sitk

    from medsight.io.images import _from_sitk

    geometry = slice_geometry(series, where)
    if geometry.multiframe:
        frames = _pixels(series.files[0], series.uid)
        volume = frames[geometry.order] if frames.ndim == 3 else frames[None]
        volume = _rescale(volume, _frame_rescale(series.headers[0]), series.files[0])
    else:
        volume = np.stack([_rescale(_pixels(series.files[i], series.uid), series.headers[i], series.files[i])
                           for i in geometry.order])
    if volume.ndim != 3:
        raise MedsightError(where, f"series {series.uid} holds colour or vector pixels {volume.shape[1:]}; "
                                   "only greyscale series are read as volumes")
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    result = _from_sitk(image, where, "dicom")
    result.stored.update({"dicom_series": series.uid, "dicom_files": [str(series.files[i]) for i in geometry.order]
                          if not geometry.multiframe else [str(series.files[0])]})
    if not geometry.multiframe:  # what a SEG drawn on this series references, slice by slice
        result.stored["dicom_sop_uids"] = [str(series.headers[i].SOPInstanceUID) for i in geometry.order]
    return result


def _pixels(path: Path, uid: str) -> np.ndarray:
    try:
        dataset = read_header(path)
    except Exception as exc:  # pydicom raises many types for broken files
        raise MedsightError(path, f"(series {uid}) is not a readable DICOM file ({str(exc).splitlines()[0][:120]})") from None
    try:
        return np.asarray(dataset.pixel_array)
    except Exception as exc:  # a transfer syntax without a decoder, or broken compressed data
        syntax = dataset.file_meta.get("TransferSyntaxUID", "unknown")
        name = getattr(syntax, "name", str(syntax))
        raise MedsightError(path, f"(series {uid}) cannot be decoded ({name}: {str(exc).splitlines()[0][:120]})") from None


def _frame_rescale(header: Any) -> dict[str, float]:
    """A multi-frame file's rescale, from its functional groups (shared, else the first frame's)."""
    for groups in (header.get("SharedFunctionalGroupsSequence"), header.get("PerFrameFunctionalGroupsSequence")):
        if groups and "PixelValueTransformationSequence" in groups[0]:
            item = groups[0].PixelValueTransformationSequence[0]
            return {"RescaleSlope": item.get("RescaleSlope", 1), "RescaleIntercept": item.get("RescaleIntercept", 0)}
    return {"RescaleSlope": header.get("RescaleSlope", 1), "RescaleIntercept": header.get("RescaleIntercept", 0)}


def _rescale(pixels: np.ndarray, header: Any, path: Path) -> np.ndarray:
    """Stored values -> modality units (HU for CT), integers kept as integers where the rescale allows."""
    try:
        slope = float(header.get("RescaleSlope", 1) or 1)
        intercept = float(header.get("RescaleIntercept", 0) or 0)
    except (TypeError, ValueError):
        raise MedsightError(path, f"has a broken RescaleSlope/RescaleIntercept ({header.get('RescaleSlope')!r}, "
                                  f"{header.get('RescaleIntercept')!r})") from None
    if slope == 1 and intercept == 0:
        return pixels
    if slope == 1 and float(intercept).is_integer():
        return (pixels.astype(np.int32) + int(intercept)).astype(np.int16 if pixels.itemsize <= 2 else np.int32)
    return (pixels.astype(np.float32) * slope + intercept).astype(np.float32)


def read_study(root: str | Path, rule: SeriesRule | None = None):
    """The series of a DICOM tree chosen by rule (default: the current rule), as a medsight Image."""
    root = Path(root)
    found = scan_study(root)
    with quiet():
        return read_series(choose_series(found, rule or current_rule(), root), root)


def is_dicom_tree(path: Path) -> bool:
    """A folder whose files (at any depth) include DICOM files and no other images."""
    from medsight.io.images import is_dicom_file, is_image_file

    if not path.is_dir():
        return False
    seen_dicom = False
    for folder, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if not is_hidden(d)]
        for name in files:
            candidate = Path(folder) / name
            if is_hidden(name):
                continue
            if is_dicom_file(candidate):
                seen_dicom = True
            elif is_image_file(candidate):
                return False
    return seen_dicom


def is_study(path: Path, with_volume: bool = False) -> bool:
    """A DICOM tree of one study and no data set file: what `check` describes by its series (a folder of
    DICOM images of several patients, or one with dataset.json, is a data set). with_volume: and one of its
    series has several slices (a folder of single radiographs stays a folder of inputs)."""
    if not is_dicom_tree(path) or any((path / name).is_file() for name in ("dataset.json", "labels.csv")):
        return False
    with quiet():
        return _one_study(path, with_volume)


def _one_study(path: Path, with_volume: bool) -> bool:
    studies, series = set(), {}
    for file in dicom_files(path):
        try:
            header = read_header(file, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SeriesInstanceUID"])
        except Exception:  # an unreadable file: the reader names it
            return True
        studies.add(str(header.get("StudyInstanceUID", "")))
        uid = str(header.get("SeriesInstanceUID", ""))
        series[uid] = series.get(uid, 0) + 1
        if len(studies) > 1:
            return False
    return not with_volume or max(series.values(), default=0) > 1
