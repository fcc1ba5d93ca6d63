"""Image and volume reading and writing: values, channels and geometry survive a round trip."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image as PILImage

from medsight.errors import MedsightError
from medsight.io.images import read_image, write_like


def test_png_16_bit_grey_and_rgb_jpeg(tmp_path):
    values = (np.arange(12 * 9).reshape(12, 9) * 600).astype(np.uint16)
    PILImage.fromarray(values).save(tmp_path / "grey.png")
    grey = read_image(tmp_path / "grey.png")
    assert grey.array.dtype == np.uint16 and np.array_equal(grey.array[0], values) and grey.layout == "grey"
    PILImage.fromarray(np.full((5, 7, 3), (10, 200, 30), np.uint8)).save(tmp_path / "rgb.png")
    rgb = read_image(tmp_path / "rgb.png")
    assert rgb.array.shape == (3, 5, 7) and rgb.layout == "rgb" and list(rgb.array[:, 0, 0]) == [10, 200, 30]


def test_tiff_stack_is_a_volume(tmp_path):
    import tifffile

    stack = np.random.default_rng(0).integers(0, 4000, (4, 10, 11)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", stack)
    image = read_image(tmp_path / "stack.tif")
    assert image.spatial_dims == 3 and np.array_equal(image.array[0], stack)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_volume_geometry_round_trip(tmp_path, suffix):
    array = np.random.default_rng(1).random((6, 7, 8)).astype(np.float32)
    volume = sitk.GetImageFromArray(array)
    volume.SetSpacing((0.8, 0.9, 2.5))
    volume.SetOrigin((-10.0, 4.0, 7.5))
    volume.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    sitk.WriteImage(volume, str(tmp_path / f"image{suffix}"))
    image = read_image(tmp_path / f"image{suffix}")
    assert image.shape == (6, 7, 8) and np.allclose(image.array[0], array)
    assert np.allclose(image.spacing, (0.8, 0.9, 2.5)) and np.allclose(image.origin, (-10.0, 4.0, 7.5))
    mask = (image.array[0] > 0.5).astype(np.uint8)
    written = write_like(mask, image, tmp_path / f"mask{suffix}")
    back = sitk.ReadImage(str(written))
    assert back.GetSpacing() == pytest.approx(volume.GetSpacing())
    assert back.GetOrigin() == pytest.approx(volume.GetOrigin())
    assert back.GetDirection() == pytest.approx(volume.GetDirection())
    assert np.array_equal(sitk.GetArrayFromImage(back), mask)


def test_nifti_prediction_keeps_the_affine(tmp_path):
    affine = np.array([[0.0, -1.2, 0.0, 30.0], [1.1, 0.0, 0.0, -5.0], [0.0, 0.0, 3.0, 12.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(np.zeros((5, 6, 7), np.int16), affine), tmp_path / "ct.nii.gz")
    image = read_image(tmp_path / "ct.nii.gz")
    write_like(np.ones(image.shape, np.uint8), image, tmp_path / "pred.nii.gz")
    assert np.allclose(nib.load(tmp_path / "pred.nii.gz").affine, affine, atol=1e-5)


def test_dicom_file_and_series_folder(tmp_path):
    from pydicom.data import get_testdata_file

    single = read_image(get_testdata_file("CT_small.dcm"))
    assert single.format == "dicom" and single.shape == (128, 128) and single.spacing[0] == pytest.approx(0.661468)
    assert single.stored["dimension"] == 3
    out = write_like(np.zeros(single.shape, np.uint8), single, tmp_path / "mask.nii.gz")
    assert sitk.ReadImage(str(out)).GetDimension() == 3  # the slice keeps its place in the patient

    series = tmp_path / "series"
    series.mkdir()
    volume = sitk.GetImageFromArray(np.arange(3 * 8 * 9, dtype=np.int16).reshape(3, 8, 9))
    volume.SetSpacing((0.5, 0.5, 2.0))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for z in range(3):
        piece = volume[:, :, z]
        piece.SetMetaData("0020|0032", f"0\\0\\{2.0 * z}")  # image position (patient)
        piece.SetMetaData("0020|000e", "1.2.3.4")  # series instance UID
        piece.SetMetaData("0020|0013", str(z + 1))
        piece.SetMetaData("0008|0060", "MR")
        writer.SetFileName(str(series / f"slice{z}.dcm"))
        writer.Execute(piece)
    image = read_image(series)
    assert image.shape == (3, 8, 9) and image.spacing[2] == pytest.approx(2.0)


def test_shared_dicom_series_when_present(shared_data):
    root = shared_data("hippocampus_dicom")
    folder = next(p.parent for p in sorted(root.rglob("*.dcm")))
    image = read_image(folder)
    assert image.spatial_dims == 3 and image.array.size > 0


@pytest.mark.parametrize("name,content,fragment", [
    ("empty.png", b"", "is empty"),
    ("bad.png", b"\x89PNG\r\n\x1a\n-not-really", "not a readable PNG"),
    ("bad.nii.gz", b"\x1f\x8b" + b"\x00" * 30, "not a readable NIFTI"),
    ("bad.tif", b"II*\x00garbage", "not a readable TIFF"),
    ("notes.txt", b"hello", "unknown image type"),
])
def test_unreadable_files_name_file_and_problem(tmp_path, name, content, fragment):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MedsightError) as info:
        read_image(path)
    message = str(info.value)
    assert name in message and fragment in message and "\n" not in message


def test_folder_without_dicom(tmp_path):
    with pytest.raises(MedsightError, match="without a DICOM series"):
        read_image(tmp_path)


def test_write_like_refuses_a_shape_mismatch(tmp_path):
    PILImage.fromarray(np.zeros((4, 5), np.uint8)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    with pytest.raises(MedsightError, match="differs from the reference"):
        write_like(np.zeros((5, 5), np.uint8), image, tmp_path / "mask.png")
    assert not (tmp_path / "mask.png").exists()


def test_large_jpeg_is_decoded_at_a_reduced_scale_no_smaller_than_asked(tmp_path):
    import torch
    from PIL import Image as PILImage

    from medsight.data.preprocess import resize
    from medsight.io.images import picture_shape, read_image

    rows, cols = np.mgrid[0:400, 0:600]
    pixels = np.stack([(rows // 2) % 256, (cols // 3) % 256, (rows + cols) % 256], -1).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "big.jpg", quality=95)
    PILImage.fromarray(pixels).save(tmp_path / "big.png")
    full = read_image(tmp_path / "big.jpg").array
    reduced = read_image(tmp_path / "big.jpg", reduce_to=(90, 90)).array
    assert full.shape == (3, 400, 600) and reduced.shape == (3, 100, 150)  # 1/4: the smallest scale >= 90 px
    assert read_image(tmp_path / "big.png", reduce_to=(90, 90)).array.shape == (3, 400, 600)  # only JPEG
    assert picture_shape(tmp_path / "big.jpg") == (400, 600)
    at_input = [resize(torch.from_numpy(a).float(), [45, 45]) for a in (full, reduced)]
    assert float((at_input[0] - at_input[1]).abs().mean()) < 2.0  # grey levels, at the network's input size


def _photograph(rows: int, cols: int) -> np.ndarray:
    """A smooth colour photograph with some texture (a JPEG of it keeps its values to a few grey levels)."""
    r, c = np.mgrid[0:rows, 0:cols].astype(float)
    red = 128 + 100 * np.sin(r / 97.0) * np.cos(c / 131.0)
    green = 255 * c / cols
    blue = 128 + 60 * np.sin((r + c) / 23.0)
    return np.clip(np.stack([red, green, blue], -1), 0, 255).astype(np.uint8)


def test_a_photograph_read_at_a_reduced_size_matches_the_full_decode_resized(tmp_path):
    import torch
    from PIL import Image as PILImage

    from medsight.data.preprocess import resize
    from medsight.io.images import read_image

    PILImage.fromarray(_photograph(1200, 1600)).save(tmp_path / "photo.jpg", quality=95)
    reduced = read_image(tmp_path / "photo.jpg", reduce_to=(240, 320), exact=True)  # DCT 1/4, then 400 -> 320
    assert reduced.array.shape == (3, 240, 320) and reduced.array.dtype == np.uint8
    assert reduced.source_shape == (1200, 1600)
    full = read_image(tmp_path / "photo.jpg")
    assert full.source_shape == () and full.shape == (1200, 1600)
    expected = resize(torch.from_numpy(full.array).float(), [240, 320]).numpy()
    difference = np.abs(reduced.array.astype(float) - expected)
    assert difference.mean() < 1.0 and np.percentile(difference, 99) < 4.0, (difference.mean(), difference.max())
    # asked for more than the picture holds: read in full, as without reduce_to
    assert read_image(tmp_path / "photo.jpg", reduce_to=(2400, 3200), exact=True).shape == (1200, 1600)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_a_reduced_read_keeps_the_full_images_geometry_exactly(tmp_path, suffix):
    from PIL import Image as PILImage

    from medsight.io.images import read_image

    # 1203 x 1601 is not a multiple of 8: the JPEG's last DCT blocks are partial, and a decode at 1/8 is
    # 151 x 201 pixels covering 1208 x 1608 source pixels. A white square centred at (1080, 1480) must land
    # at (1080, 1480) * target / full, not stretched by 201 / 1601 * 8.
    picture = np.zeros((1203, 1601, 3), np.uint8)
    picture[1000:1160, 1400:1560] = 255
    PILImage.fromarray(picture).save(tmp_path / f"square{suffix}", **({"quality": 95} if suffix == ".jpg" else {}))
    image = read_image(tmp_path / f"square{suffix}", reduce_to=(150, 200), exact=True)
    assert image.shape == (150, 200) and image.source_shape == (1203, 1601)
    weight = image.array[0].astype(float)
    rows, cols = np.mgrid[0:150, 0:200] + 0.5  # pixel centres
    centre = (float((weight * rows).sum() / weight.sum()), float((weight * cols).sum() / weight.sum()))
    np.testing.assert_allclose(centre, (1080 * 150 / 1203, 1480 * 200 / 1601), atol=0.15)
