"""Turning an upload into one input on disk: a checked file name, a size limit, a DICOM series from a zip
or from several files sent at once."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Sequence

from medsight.errors import MedsightError
from medsight.io.images import IMAGE_SUFFIXES, is_dicom_file, suffix_of

MAX_ZIP_MEMBERS = 5000


class UploadError(Exception):
    """A request the server refuses: an HTTP status and a message naming the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def safe_name(filename: str | None) -> str:
    """The last component of a client's file name, with only harmless characters (no path can be smuggled)."""
    base = PureWindowsPath(PurePosixPath(filename or "").name).name
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in base).lstrip(".")
    return cleaned[:120] or "upload"


def save_upload(stream: BinaryIO, filename: str | None, folder: Path, limit_bytes: int) -> Path:
    """Store an uploaded file (or unpack a zipped DICOM series) under folder; returns the input to predict."""
    name = safe_name(filename)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / name
    _copy_limited(stream, target, limit_bytes, name)
    suffix = suffix_of(target)
    if suffix == ".zip":
        return unpack_series(target, folder / "series", limit_bytes)
    if suffix in IMAGE_SUFFIXES:
        return target
    if is_dicom_file(target):  # DICOM slices often come without a suffix
        return target.rename(target.with_name(target.name + ".dcm"))
    raise UploadError(415, f"{name}: unsupported file type {suffix or '(no suffix)'}; send a PNG, JPEG, TIFF, "
                           "NIfTI, NRRD, MHA or DICOM file, or a zip of one DICOM series")


def save_uploads(parts: Sequence[tuple[BinaryIO, str | None]], folder: Path, limit_bytes: int) -> tuple[Path, str]:
    """One uploaded file as save_upload does, or several as the files of one DICOM series (folder/series);
    returns the input to predict and the name that messages give it."""
    if len(parts) == 1:
        stream, filename = parts[0]
        return save_upload(stream, filename, folder, limit_bytes), safe_name(filename)
    if len(parts) > MAX_ZIP_MEMBERS:
        raise UploadError(400, f"{len(parts)} files sent (at most {MAX_ZIP_MEMBERS} in one series)")
    series = folder / "series"
    series.mkdir(parents=True, exist_ok=True)
    left = limit_bytes  # the limit holds for the files together, as for one file
    for index, (stream, filename) in enumerate(parts):
        name = safe_name(filename)
        target = series / f"{index:05d}_{name}"
        left -= _copy_limited(stream, target, left, name, shown_limit=limit_bytes)
        if not (suffix_of(target) == ".dcm" or is_dicom_file(target)):
            raise UploadError(415, f"{name}: is not a DICOM file; several files are read as one DICOM series "
                                   "(send other images one at a time)")
    return series, f"{len(parts)} DICOM files"


def _copy_limited(stream: BinaryIO, target: Path, limit_bytes: int, name: str, shown_limit: int | None = None) -> int:
    written = 0
    with open(target, "wb") as out:
        while chunk := stream.read(1 << 20):
            written += len(chunk)
            if written > limit_bytes:
                shown = (shown_limit or limit_bytes) // (1 << 20)
                raise UploadError(413, f"{name}: larger than the upload limit of {shown} MiB")
            out.write(chunk)
    if written == 0:
        raise UploadError(400, f"{name}: the uploaded file is empty")
    return written


def unpack_series(archive: Path, folder: Path, limit_bytes: int) -> Path:
    """Unpack a zip's files flat into folder (member paths are never used as paths); returns folder."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = [m for m in bundle.infolist() if not m.is_dir() and not _is_noise(m.filename)]
            if not members:
                raise UploadError(400, f"{archive.name}: the zip holds no files")
            if len(members) > MAX_ZIP_MEMBERS:
                raise UploadError(400, f"{archive.name}: the zip holds {len(members)} files (at most {MAX_ZIP_MEMBERS})")
            if sum(m.file_size for m in members) > 4 * limit_bytes:  # a zip bomb is refused before unpacking
                raise UploadError(413, f"{archive.name}: unpacks to more than {4 * limit_bytes // (1 << 20)} MiB")
            folder.mkdir(parents=True, exist_ok=True)
            for index, member in enumerate(members):
                with bundle.open(member) as source, open(folder / f"{index:05d}_{safe_name(member.filename)}", "wb") as out:
                    shutil.copyfileobj(source, out)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
        raise UploadError(400, f"{archive.name}: not a readable zip file ({exc})") from None
    return folder


def _is_noise(member: str) -> bool:
    parts = PurePosixPath(member.replace("\\", "/")).parts
    return any((p.startswith(".") and p not in (".", "..")) or p == "__MACOSX" for p in parts)


def check_self_contained(path: Path, name: str) -> None:
    """Refuse headers that point at data files elsewhere (MetaImage ElementDataFile, NRRD "data file"):
    reading them would make the server open files outside the upload."""
    suffix = suffix_of(path)
    if suffix not in (".mha", ".mhd", ".nrrd", ".nhdr") or not path.is_file():
        return
    with open(path, "rb") as handle:
        head = handle.read(8192)
    lines = head.split(b"\n\n", 1)[0].decode("latin-1").splitlines() if suffix in (".nrrd", ".nhdr") \
        else head.decode("latin-1", "replace").splitlines()
    for line in lines:
        key, _, value = line.partition("=" if suffix in (".mha", ".mhd") else ":")
        key = key.strip().lower().replace(" ", "")
        if suffix in (".mha", ".mhd") and key == "elementdatafile" and value.strip().upper() != "LOCAL":
            raise UploadError(415, f"{name}: a MetaImage header whose data lies in another file ({value.strip()[:60]}) "
                                   "is not accepted; upload a single .mha file with its data inside")
        if suffix in (".nrrd", ".nhdr") and key in ("datafile", "data_file"):
            raise UploadError(415, f"{name}: an NRRD header whose data lies in another file is not accepted; "
                                   "upload a single .nrrd file with its data inside")


def check_voxels(path: Path, name: str, max_voxels: int) -> None:
    """413 when the upload's headers declare more voxels than the cap, before any pixel is decoded."""
    from medsight.serving.voxels import declared_voxels

    voxels = declared_voxels(path)
    if voxels is not None and voxels > max_voxels:
        raise UploadError(413, f"{name}: declares {voxels:,} voxels, more than the limit of {max_voxels:,}")


def problem_text(exc: MedsightError, folder: Path, name: str) -> str:
    """A reader's one-line error with the server's temporary paths replaced by the uploaded file's name."""
    text = str(exc)
    for prefix in sorted({str(folder / "series"), str(folder / name), str(folder)}, key=len, reverse=True):
        text = text.replace(prefix, name)
    return text
