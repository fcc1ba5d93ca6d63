"""Reading and writing single images and volumes, with their geometry.

Raster pictures (PNG, JPEG, BMP) go through Pillow and TIFF through tifffile, so 16-bit and multi-page
files keep their values; NIfTI, NRRD, MHA/MHD and DICOM go through SimpleITK, which keeps spacing, origin
and direction. Arrays are channels first in SimpleITK's axis order: (C, H, W) for 2D and (C, Z, Y, X) for
3D; spacing, origin and direction are in SimpleITK's order (x first). A volume of a single slice (a DICOM
radiograph, say) is read as 2D and written back with its original geometry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medsight.errors import MedsightError
from medsight.io.integrity import require_complete_nifti
from medsight.jsonio import atomic_write

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # GIF: DRIVE's vessel masks
TIFF_SUFFIXES = (".tif", ".tiff")
VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm")
IMAGE_SUFFIXES = RASTER_SUFFIXES + TIFF_SUFFIXES + VOLUME_SUFFIXES
_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".bmp": "bmp", ".gif": "gif", ".tif": "tiff", ".tiff": "tiff",
            ".nii.gz": "nifti", ".nii": "nifti", ".nrrd": "nrrd", ".nhdr": "nrrd", ".mha": "mha", ".mhd": "mha",
            ".dcm": "dicom"}


@dataclass
class Image:
    """An image or volume with its geometry; ``array`` is (C, *spatial)."""

    array: np.ndarray
    path: Path
    format: str
    spacing: tuple[float, ...] = ()
    origin: tuple[float, ...] = ()
    direction: tuple[float, ...] = ()
    # "grey", "rgb", "vector" (several components per voxel) or "4d" (a time or channel axis in the file)
    layout: str = "grey"
    # the geometry as stored (a single-slice volume keeps its third axis here)
    stored: dict[str, Any] = field(default_factory=dict)
    # (rows, cols) of the picture in its file when ``array`` was decoded smaller (read_image's reduce_to)
    source_shape: tuple[int, ...] = ()

    @property
    def spatial_dims(self) -> int:
        return self.array.ndim - 1

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[1:])


def suffix_of(path: Path) -> str:
    """The format suffix, ``.nii.gz`` counted as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def strip_suffix(path: Path) -> str:
    """The file name without its format suffix."""
    return path.name[: len(path.name) - len(suffix_of(path))] if suffix_of(path) else path.name


def is_image_file(path: Path) -> bool:
    return path.is_file() and suffix_of(path) in IMAGE_SUFFIXES and not is_hidden(path.name)


def is_dicom_file(path: Path) -> bool:
    """A DICOM file by its preamble (series files often have no suffix)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def is_hidden(name: str) -> bool:
    """A name no data set means: dot files and folders (.DS_Store, macOS '._x' copies) and the __MACOSX folder
    that zip archives made on a Mac carry beside the data."""
    return name.startswith(".") or name == "__MACOSX"


def is_dicom_series(path: Path) -> bool:
    return path.is_dir() and any(is_dicom_file(p) for p in sorted(path.iterdir())[:20] if p.is_file())


def read_image(path: str | Path, reduce_to: tuple[int, int] | None = None, exact: bool = False) -> Image:
    """Read a picture, a volume, a DICOM file, or a folder of DICOM files (one series is chosen, see medsight.io.dicom_series).

    reduce_to (rows, cols): a JPEG at least twice that size in both directions is decoded at a reduced
    scale (libjpeg's DCT scaling by 1/2, 1/4 or 1/8) no smaller than it, several times faster and smaller
    than the full decode. With ``exact`` the picture (a PNG or BMP too) is then resized to exactly
    reduce_to over its whole extent (Pillow's antialiased bilinear, after an integer ``reduce``), so that a
    pixel of the full image at (r, c) is at (r, c) * reduce_to / source_shape; a larger reduce_to, a 16-bit
    picture and other formats are read at full size. ``source_shape`` keeps the size in the file.
    """
    path = Path(path)
    if path.is_dir():
        return _read_dicom_series(path)
    if not path.is_file():
        raise MedsightError(path, "does not exist")
    if path.stat().st_size == 0:
        raise MedsightError(path, "is empty")
    suffix = suffix_of(path)
    if suffix in RASTER_SUFFIXES:
        return _read_raster(path, reduce_to, exact)
    if suffix in TIFF_SUFFIXES:
        return _read_tiff(path)
    if suffix in VOLUME_SUFFIXES or is_dicom_file(path):
        return _read_sitk(path, _FORMATS.get(suffix, "dicom"))
    raise MedsightError(path, f"has an unknown image type {suffix or '(no suffix)'!r}; "
                              f"expected one of {', '.join(IMAGE_SUFFIXES)} or a DICOM series folder")


def picture_shape(path: str | Path) -> tuple[int, int] | None:
    """(rows, cols) of a PNG/JPEG/BMP from its header, without decoding; None for other files."""
    from PIL import Image as PILImage, UnidentifiedImageError

    if suffix_of(Path(path)) not in RASTER_SUFFIXES:
        return None
    try:
        with PILImage.open(path) as picture:
            return picture.size[1], picture.size[0]
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


REDUCING_GAP = 3.0  # Pillow's two-step resize (integer reduce, then resample) looks like one fair resample


def _read_raster(path: Path, reduce_to: tuple[int, int] | None = None, exact: bool = False) -> Image:
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as picture:  # Pillow refuses decompression bombs (DecompressionBombError)
            full = (picture.size[1], picture.size[0])  # from the header, before any reduced decode
            # the full image's extent on the decoded grid: (0, 0, cols / s, rows / s) at DCT scale 1/s
            extent = (0.0, 0.0, float(picture.size[0]), float(picture.size[1]))
            if reduce_to and picture.format == "JPEG" and picture.mode in ("L", "RGB"):
                drafted = picture.draft(picture.mode, (int(reduce_to[1]), int(reduce_to[0])))
                if drafted:
                    extent = tuple(float(v) for v in drafted[1])
            picture.load()
            if picture.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "HSV", "1"):
                picture = picture.convert("RGB" if picture.mode not in ("1", "LA") else "L")
            rows, cols = (int(reduce_to[0]), int(reduce_to[1])) if reduce_to else full
            if (exact and picture.mode in ("L", "RGB") and rows <= full[0] and cols <= full[1]
                    and (rows, cols) != full):
                picture = picture.resize((cols, rows), PILImage.Resampling.BILINEAR, box=extent,
                                         reducing_gap=REDUCING_GAP)
            array = np.asarray(picture)
    except PILImage.DecompressionBombError as exc:
        raise MedsightError(path, f"is too large to decode safely ({_first_line(exc)})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise MedsightError(path, f"is not a readable {_FORMATS[suffix_of(path)].upper()} image ({_first_line(exc)})") from None
    image = _picture(array, path, _FORMATS[suffix_of(path)])
    if image.shape != full:
        image.source_shape = full
    return image


def _read_tiff(path: Path) -> Image:
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types for broken files
        raise MedsightError(path, f"is not a readable TIFF image ({_first_line(exc)})") from None
    if array.size == 0 or array.ndim < 2:
        raise MedsightError(path, "is not a readable TIFF image (no image data in it)")
    if array.ndim == 3 and array.shape[-1] not in (3, 4):
        return Image(array[None], path, "tiff", spacing=(1.0, 1.0, 1.0), origin=(0.0,) * 3,
                     direction=tuple(np.eye(3).ravel()))  # a multi-page stack is a volume
    return _picture(array, path, "tiff")


def _picture(array: np.ndarray, path: Path, fmt: str) -> Image:
    if array.ndim == 2:
        array, layout = array[None], "grey"
    elif array.ndim == 3 and array.shape[-1] in (3, 4):
        array, layout = np.moveaxis(array[..., :3], -1, 0), "rgb"
    else:
        raise MedsightError(path, f"has an unsupported picture shape {array.shape}")
    if array.size == 0:
        raise MedsightError(path, "holds an image with no pixels")
    return Image(np.ascontiguousarray(array), path, fmt, spacing=(1.0, 1.0), origin=(0.0, 0.0),
                 direction=(1.0, 0.0, 0.0, 1.0), layout=layout)


def _read_sitk(path: Path, fmt: str) -> Image:
    import SimpleITK as sitk

    if fmt == "nifti":
        require_complete_nifti(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise MedsightError(path, f"is not a readable {fmt.upper()} file ({_sitk_reason(exc)})") from None
    return _from_sitk(image, path, fmt)


def _read_dicom_series(folder: Path) -> Image:
    """A folder holding one series, or a whole study tree: the series the current rule chooses."""
    from medsight.io.dicom_series import read_study

    return read_study(folder)


def _from_sitk(image: Any, path: Path, fmt: str) -> Image:
    import SimpleITK as sitk

    stored = {"spacing": image.GetSpacing(), "origin": image.GetOrigin(), "direction": image.GetDirection(),
              "dimension": image.GetDimension()}
    array = sitk.GetArrayFromImage(image)  # (Z, Y, X) or (Y, X), components last
    components = image.GetNumberOfComponentsPerPixel()
    layout = "grey"
    if components > 1:
        array = np.moveaxis(array, -1, 0)
        layout = "rgb" if components == 3 and array.dtype == np.uint8 else "vector"
    else:
        array = array[None]
    dimension = image.GetDimension()
    if dimension == 4:
        array, layout = array[0], "4d"  # (T, Z, Y, X): the file's fourth axis becomes channels
        dimension = 3
    spacing, origin = tuple(stored["spacing"])[:dimension], tuple(stored["origin"])[:dimension]
    direction = tuple(np.asarray(stored["direction"]).reshape(image.GetDimension(), -1)[:dimension, :dimension].ravel())
    if dimension == 3 and array.shape[1] == 1:  # one slice: a picture with 3D geometry kept in `stored`
        array = array[:, 0]
        spacing, origin = spacing[:2], origin[:2]
        direction = tuple(np.asarray(direction).reshape(3, 3)[:2, :2].ravel())
    if array.size == 0:
        raise MedsightError(path, "holds an image with no voxels")
    return Image(array, path, fmt, tuple(map(float, spacing)), tuple(map(float, origin)),
                 tuple(map(float, direction)), layout, stored)


def write_like(array: np.ndarray, reference: Image, path: str | Path) -> Path:
    """Write array (spatial, or (C, *spatial)) in reference's geometry, in the format of path's suffix."""
    path = Path(path)
    array = np.asarray(array)
    spatial = array.shape if array.ndim == reference.spatial_dims else array.shape[1:]
    if tuple(spatial) != reference.shape:
        raise MedsightError(path, f"cannot be written: array shape {tuple(spatial)} differs from the "
                                  f"reference image {reference.path.name} {reference.shape}")
    suffix = suffix_of(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in RASTER_SUFFIXES + TIFF_SUFFIXES:
        atomic_write(path, lambda tmp: _write_picture(array, reference, tmp, suffix))
    elif suffix in VOLUME_SUFFIXES:
        atomic_write(path, lambda tmp: _write_sitk(array, reference, tmp), suffix=suffix)
    else:
        raise MedsightError(path, f"has an unknown image type {suffix!r}")
    return path


def _write_picture(array: np.ndarray, reference: Image, target: Path, suffix: str) -> None:
    from PIL import Image as PILImage

    if array.ndim == reference.spatial_dims + 1:
        array = array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)
    if suffix in TIFF_SUFFIXES:
        import tifffile

        tifffile.imwrite(target, array)
        return
    if array.dtype not in (np.uint8, np.uint16) or (array.dtype == np.uint16 and suffix != ".png"):
        array = np.clip(array, 0, 255).astype(np.uint8)
    PILImage.fromarray(array).save(target, format={".jpg": "JPEG", ".jpeg": "JPEG"}.get(suffix, suffix[1:].upper()))


def _write_sitk(array: np.ndarray, reference: Image, target: Path) -> None:
    import SimpleITK as sitk

    vector = array.ndim == reference.spatial_dims + 1 and array.shape[0] > 1
    if array.ndim == reference.spatial_dims + 1 and not vector:
        array = array[0]
    stored_dims = reference.stored.get("dimension", reference.spatial_dims)
    if vector:
        array = np.moveaxis(array, 0, -1)
    if stored_dims == 3 and reference.spatial_dims == 2:
        array = array[None]  # give a single-slice volume its third axis back
    image = sitk.GetImageFromArray(array, isVector=vector)
    if stored_dims == image.GetDimension() and reference.stored:
        image.SetSpacing(reference.stored["spacing"])
        image.SetOrigin(reference.stored["origin"])
        image.SetDirection(reference.stored["direction"])
    elif reference.spacing:
        image.SetSpacing(reference.spacing)
        image.SetOrigin(reference.origin)
        image.SetDirection(reference.direction)
    sitk.WriteImage(image, str(target), True)


def _sitk_reason(exc: Exception) -> str:
    """The useful line of a SimpleITK exception (its first lines are C++ file positions)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in lines:
        if "description:" in line.lower():
            return line.split(":", 1)[1].strip()[:200]
    return (lines[-1] if lines else type(exc).__name__)[:200]


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]
