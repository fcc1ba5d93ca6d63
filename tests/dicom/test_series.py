"""Study folders: series grouped and chosen, slices ordered in space, compressed pixels, broken series refused."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.errors import MedsightError

from medsight.io.dicom_series import SeriesRule, describe_study, read_study


def _study(tmp_path, series_writer, ramp):
    """A study folder as scanners send it: a one-slice localiser, a 5-slice axial series, slices shuffled in names."""
    volume = ramp(5)
    axial = series_writer(tmp_path / "study" / "a", volume, series_uid="1.2.3.1", description="Thorax axial",
                          heights=[8.0, 0.0, 4.0, 2.0, 6.0][::-1])
    series_writer(tmp_path / "study" / "b", ramp(1), series_uid="1.2.3.2", description="Topogram")
    return tmp_path / "study", volume, axial


def test_study_lists_series_and_chooses_the_largest(tmp_path, series_writer, ramp):
    from medsight import api

    study, volume, _ = _study(tmp_path, series_writer, ramp)
    described = api.check(study)
    assert [s["uid"] for s in described["series"]] == ["1.2.3.1", "1.2.3.2"]
    assert described["chosen"] == "1.2.3.1" and "problem" not in described
    image = read_study(study)
    # files were written at heights 6, 4, 2, 0, 8 (slice k of the ramp at its height): sorted by height,
    # the volume is the ramp's slices in the order 3, 2, 1, 0, 4 (heights 0, 2, 4, 6, 8)
    heights = [8.0, 0.0, 4.0, 2.0, 6.0][::-1]
    expected = volume[np.argsort(heights)].astype(np.int32) - 1024
    assert image.shape == (5, 8, 8)
    np.testing.assert_array_equal(image.array[0], expected)
    assert image.spacing == pytest.approx((0.5, 0.5, 2.0)) and image.origin == pytest.approx((0.0, 0.0, 0.0))


def test_series_chosen_by_uid_modality_and_description(tmp_path, series_writer, ramp):
    study, _, _ = _study(tmp_path, series_writer, ramp)
    assert read_study(study, SeriesRule(uid="1.2.3.2")).shape == (8, 8)  # the localiser: one slice, read as 2D
    assert read_study(study, SeriesRule(description="topo")).shape == (8, 8)
    with pytest.raises(MedsightError, match="no image series of modality MR"):
        read_study(study, SeriesRule(modality="MR"))
    with pytest.raises(MedsightError, match="has no series 9.9.9"):
        read_study(study, SeriesRule(uid="9.9.9"))


def test_predictor_rule_comes_from_the_plan():
    assert SeriesRule.from_plan({"dicom_series": {"modality": "CT", "description": "axial"}}) == \
        SeriesRule(None, "CT", "axial")
    assert SeriesRule.from_plan({}, uid="1.2").uid == "1.2"


@pytest.mark.parametrize("heights, problem", [
    ([0.0, 2.0, 6.0, 8.0], "missing 1 slice"),
    ([0.0, 2.0, 3.0, 8.0], "uneven slice spacing"),
    ([0.0, 2.0, 2.0, 4.0], "at the same position"),
])
def test_irregular_series_are_one_line(tmp_path, series_writer, ramp, heights, problem):
    series_writer(tmp_path / "s", ramp(4), series_uid="1.2.3.7", heights=heights)
    with pytest.raises(MedsightError, match=f"series 1.2.3.7 .*{problem}") as info:
        read_study(tmp_path / "s")
    assert "\n" not in str(info.value)
    assert problem in describe_study(tmp_path / "s")["problem"]


def test_mixed_orientations_are_refused(tmp_path, series_writer, ramp):
    series_writer(tmp_path / "s", ramp(2), series_uid="1.2.3.8", heights=[0.0, 2.0])
    series_writer(tmp_path / "s2", ramp(1), series_uid="1.2.3.8", heights=[4.0], orientation=(1, 0, 0, 0, 0, -1))
    (tmp_path / "s2" / "slice_000.dcm").rename(tmp_path / "s" / "coronal.dcm")
    with pytest.raises(MedsightError, match="series 1.2.3.8 mixes 2 slice orientations"):
        read_study(tmp_path / "s")


def test_oblique_orientation_gives_its_direction(tmp_path, series_writer, ramp):
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = (c, s, 0.0, -s, c, 0.0)
    series_writer(tmp_path / "s", ramp(3), heights=[0.0, 3.0, 6.0], orientation=orientation)
    image = read_study(tmp_path / "s")
    direction = np.asarray(image.direction).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], orientation[:3], atol=1e-6)
    np.testing.assert_allclose(direction[:, 1], orientation[3:], atol=1e-6)
    assert image.spacing[2] == pytest.approx(3.0)


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.90"],
                         ids=["rle", "jpeg-ls", "jpeg2000"])
def test_compressed_series_decode_to_the_same_voxels(tmp_path, series_writer, ramp, syntax):
    import pydicom

    volume = ramp(3, 40)  # JPEG 2000 needs tiles larger than its resolution levels
    paths = series_writer(tmp_path / "s", volume, syntax=syntax)
    assert str(pydicom.dcmread(paths[0], stop_before_pixels=True).file_meta.TransferSyntaxUID) == syntax
    np.testing.assert_array_equal(read_study(tmp_path / "s").array[0], volume.astype(np.int32) - 1024)


@pytest.mark.parametrize("name", ["MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm", "JPEG2000.dcm"])
def test_compressed_files_from_pydicom_decode(tmp_path, name):
    import shutil

    import pydicom
    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file(name), tmp_path / name)
    image = read_study(tmp_path)
    assert pydicom.dcmread(tmp_path / name, stop_before_pixels=True).file_meta.TransferSyntaxUID.is_compressed
    if name.startswith("MR_small"):  # lossless: the very voxels of the uncompressed file
        np.testing.assert_array_equal(image.array[0], pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array)
    else:  # lossy: the shape and the decoder's values (12-bit JPEG is decoded by libjpeg, not Pillow)
        np.testing.assert_array_equal(image.array[0], pydicom.dcmread(tmp_path / name).pixel_array)
        assert image.shape == (1024, 256) and image.array.std() > 0


def test_undecodable_pixels_are_one_line(tmp_path):
    import shutil

    from pydicom.data import get_testdata_file

    shutil.copy(get_testdata_file("JPEG-lossy.dcm"), tmp_path / "lossy.dcm")  # a JPEG stream no plugin here decodes
    with pytest.raises(MedsightError, match=r"lossy.dcm: \(series .*\) cannot be decoded \(JPEG Extended") as info:
        read_study(tmp_path)
    assert "\n" not in str(info.value)


def test_multiframe_file_reads_like_its_slices(tmp_path, series_writer, ramp):
    import highdicom as hd
    import pydicom

    paths = series_writer(tmp_path / "single", ramp(4), heights=[0.0, 2.0, 4.0, 6.0])
    legacy = [pydicom.dcmread(p) for p in paths]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(legacy_datasets=legacy, series_instance_uid=hd.UID(),
                                                        series_number=2, sop_instance_uid=hd.UID(), instance_number=1)
    (tmp_path / "multi").mkdir()
    enhanced.save_as(tmp_path / "multi" / "volume.dcm")
    single, multi = read_study(tmp_path / "single"), read_study(tmp_path / "multi")
    np.testing.assert_array_equal(multi.array, single.array)
    assert multi.spacing == pytest.approx(single.spacing) and multi.origin == pytest.approx(single.origin)


def test_real_ct_study_chooses_one_of_two_reconstructions():
    import os
    from pathlib import Path

    shared = Path(os.environ.get("MEDSIGHT_SHARED", Path(__file__).resolve().parents[3] / "shared"))
    root = shared / "data" / "lung_pet_ct_dx_ct_dicom" / "Lung-PET-CT-Dx"
    if not root.is_dir():
        pytest.skip(f"{root} is not present on this machine")
    described = describe_study(root)
    assert len(described["series"]) == 2 and all(s["frames"] == 30 for s in described["series"])
    image = read_study(root, SeriesRule(description="B40f"))
    assert image.shape == (30, 512, 512) and image.spacing[2] == pytest.approx(8.0, abs=0.01)
    assert image.array.min() == -1024  # rescaled to HU
