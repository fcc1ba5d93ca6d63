"""Opening a packed run (see medsight.sharing.pack): the manifest, and every file checked against its sha256.

``unpacked_run`` extracts only the files manifest.json names, into a fresh private folder, and refuses the
whole archive when any of them differs from its sha256 or size: a tampered or damaged archive is a
one-line error, never a half-loaded model. It sits below the run folder, so that loading a run
(``medsight.run.load_run``) and ``--init`` take a packed file wherever they take a run folder.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from medsight.errors import MedsightError

FORMAT = "medsight-pack"
MANIFEST = "manifest.json"
_opened: dict[Path, Path] = {}  # archive -> its checked, extracted folder, for this process


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a medsight archive, or None when path is some other file (an image, a DICOM zip)."""
    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if MANIFEST not in archive.namelist():
                return None
            manifest = json.loads(archive.read(MANIFEST))
    except (zipfile.BadZipFile, ValueError, OSError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def is_packed(path: str | Path) -> bool:
    return read_manifest(Path(path)) is not None


def _safe_relative(name: str, archive: Path) -> PurePosixPath:
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise MedsightError(archive, f"manifest.json names an unsafe path {name!r}")
    return relative


def unpacked_run(path: str | Path) -> Path:
    """The run folder inside a packed file, extracted once per process after every sha256 is checked."""
    path = Path(path).resolve()
    if path in _opened:
        return _opened[path]
    manifest = read_manifest(path)
    if manifest is None:
        raise MedsightError(path, "is not a medsight archive (no manifest.json of format medsight-pack)")
    folder = Path(tempfile.mkdtemp(prefix="medsight-pack-"))
    atexit.register(shutil.rmtree, folder, True)
    name = str(manifest.get("run") or "")
    run_dir = folder / (name if name not in ("", ".", "..") and not set("/\\") & set(name) else "run")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for place, entry in (manifest.get("files") or {}).items():
                _safe_relative(place, path)
                if place not in names:
                    raise MedsightError(path, f"{place} is listed in manifest.json but missing from the archive")
                if archive.getinfo(place).file_size != entry.get("bytes"):
                    raise MedsightError(path, f"{place} has another size than manifest.json states "
                                              "(the archive was changed or damaged)")
                data = archive.read(place)
                if sha256_bytes(data) != entry.get("sha256"):
                    raise MedsightError(path, f"{place} does not match its sha256 in manifest.json "
                                              "(the archive was changed or damaged)")
                if entry.get("run_path"):
                    target = run_dir / _safe_relative(entry["run_path"], path)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise MedsightError(path, f"is not a readable zip archive ({exc})") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _opened[path] = run_dir
    return run_dir


def run_or_unpacked(path: str | Path) -> Path:
    """A run folder as given, or the checked run folder inside a packed file."""
    path = Path(path)
    return unpacked_run(path) if path.is_file() and is_packed(path) else path
