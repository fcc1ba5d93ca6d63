"""Checks for damaged files that a reading library would otherwise accept silently."""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from medsight.errors import MedsightError

NIFTI1_HEADER = 348


def require_complete_nifti(path: Path) -> None:
    """Refuse a truncated NIfTI-1 file: SimpleITK reads one without complaint and fills the missing voxels with zeros."""
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(NIFTI1_HEADER)
            if len(header) < NIFTI1_HEADER:
                raise MedsightError(path, f"is not a readable NIFTI file (truncated: {len(header)} bytes, less than a header)")
            endian = next((e for e in "<>" if struct.unpack(f"{e}i", header[:4])[0] == NIFTI1_HEADER), None)
            if endian is None:
                return  # NIfTI-2 or not NIfTI at all: SimpleITK decides
            dims = struct.unpack(f"{endian}8h", header[40:56])
            bitpix = struct.unpack(f"{endian}h", header[72:74])[0]
            vox_offset = struct.unpack(f"{endian}f", header[108:112])[0]
            if not 1 <= dims[0] <= 7 or min(dims[1:1 + dims[0]]) < 1 or bitpix < 1:
                return  # a malformed header: SimpleITK's own message is clearer
            expected = int(vox_offset) + int(np.prod(dims[1:1 + dims[0]], dtype=np.int64)) * bitpix // 8
            size = handle.seek(0, io.SEEK_END)  # a gzip stream is decompressed to its end here
    except (EOFError, OSError, zlib.error) as exc:
        raise MedsightError(path, f"is not a readable NIFTI file (truncated or corrupt: {exc})") from None
    if size < expected:
        raise MedsightError(path, f"is not a readable NIFTI file (truncated: its header promises {expected} bytes, "
                                  f"it holds {size})")
