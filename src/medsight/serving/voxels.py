"""How many voxels an upload declares, read from its headers only, so a decompression bomb (a small file
that inflates to gigabytes) is refused before its pixels are decoded.

Each format's header is read with its library's lazy reader (nibabel, tifffile, Pillow, pydicom without
pixels) or, for NRRD and MetaImage, as the text it is. A file whose header cannot be read is left to the
image reader, which names the problem.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

MAX_VOXELS = 1 << 28  # 268 million voxels: 1 GiB as float32, several times any CT or whole-slide tile served here


def declared_voxels(path: Path) -> int | None:
    """Voxels (x channels) the file's header declares; a DICOM folder: the sum over its files; None if unknown."""
    from medsight.io.images import is_dicom_file, suffix_of

    if path.is_dir():
        total = 0
        for member in sorted(path.rglob("*")):
            if member.is_file():
                total += declared_voxels(member) or 0
        return total
    suffix = suffix_of(path)
    try:
        if suffix in (".nii", ".nii.gz"):
            import nibabel

            return math.prod(int(n) for n in nibabel.load(str(path)).header.get_data_shape())
        if suffix in (".nrrd", ".nhdr"):
            return _text_header_voxels(path, "sizes", ":")
        if suffix in (".mha", ".mhd"):
            return _text_header_voxels(path, "dimsize", "=")
        if suffix in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                return sum(math.prod(page.shape) for page in tiff.pages)
        if suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            from PIL import Image

            try:
                with Image.open(path) as picture:  # reads the header; pixels are decoded on load()
                    return picture.width * picture.height * len(picture.getbands())
            except Image.DecompressionBombError as exc:  # Pillow's own guard, over twice its MAX_IMAGE_PIXELS:
                found = re.search(r"\((\d+) pixels\)", str(exc))  # its message gives the declared size
                return int(found.group(1)) if found else 2 * int(Image.MAX_IMAGE_PIXELS or 0) + 1
        if suffix == ".dcm" or is_dicom_file(path):
            import pydicom

            header = pydicom.dcmread(path, stop_before_pixels=True)
            return int(header.get("Rows", 0) or 0) * int(header.get("Columns", 0) or 0) * \
                int(header.get("NumberOfFrames", 1) or 1) * int(header.get("SamplesPerPixel", 1) or 1)
    except Exception:  # an unreadable header: the image reader reports it with the file's name
        return None
    return None


def _text_header_voxels(path: Path, key: str, separator: str) -> int | None:
    with open(path, "rb") as handle:
        head = handle.read(16384).decode("latin-1", "replace")
    for line in head.splitlines():
        name, found, value = line.partition(separator)
        if found and name.strip().lower().replace(" ", "") == key:
            return math.prod(int(v) for v in value.split())
    return None
