"""LUNA16 layout, world geometry, LUNA16's FROC and 3D detection on a grid of millimetres."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medsight.errors import MedsightError
from medsight.io.formats import detect_format
from medsight.io.geometry import Geometry
from medsight.io.luna16 import read_luna16
from medsight.synthetic.luna16 import make_luna16


@pytest.fixture
def cache_in_tmp(tmp_path, monkeypatch):
    import medsight.data.volume_cache as volume_cache

    monkeypatch.setattr(volume_cache, "default_cache_root", lambda: tmp_path / "cache")
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def luna(tmp_path_factory) -> Path:
    return make_luna16(tmp_path_factory.mktemp("luna") / "data", seed=0, num_scans=6, shape=(16, 40, 40),
                       spacing_xyz=(1.5, 1.5, 3.0), diameters_mm=(4.0, 12.0), tubes=3)


def test_geometry_round_trip_with_a_rotated_direction():
    c, s = np.cos(0.3), np.sin(0.3)
    g = Geometry((10, 20, 5), (0.7, 0.8, 2.5), (-100.0, 30.0, -250.0), (c, -s, 0, s, c, 0, 0, 0, 1))
    voxels = np.array([[0.5, 0.5, 0.5], [2.25, 7.0, 3.5]])  # (z, y, x); voxel (0, 0, 0)'s centre is the origin
    world = g.to_world(voxels)
    np.testing.assert_allclose(world[0], g.origin)
    # (z, y, x) = (2.25, 7, 3.5) -> ITK index (3, 6.5, 1.75): x 3 * 0.7 = 2.1, y 6.5 * 0.8 = 5.2, z 1.75 * 2.5 = 4.375
    np.testing.assert_allclose(world[1], [-100 + c * 2.1 - s * 5.2, 30 + s * 2.1 + c * 5.2, -250 + 4.375])
    np.testing.assert_allclose(g.to_voxel(world), voxels)


def test_luna16_layout_is_recognised_and_nodules_land_in_their_voxels(luna):
    assert detect_format(luna) == ("luna16", "detection")
    data = read_luna16(luna)
    assert len(data) == 6 and {p[0].parent.name for p in data.sources} == {"subset0", "subset1"}
    assert len(data.boxes[4]) == 0  # every fifth scan has no nodule
    rows = list(csv.DictReader(open(luna / "annotations.csv")))
    assert sum(len(b) for b in data.boxes) == len(rows)
    k = data.case_ids.index(rows[0]["seriesuid"])
    box, g = data.boxes[k][0], data.geometries[k]
    assert g.origin[0] != 0 and g.spacing[2] > 1.5 * g.spacing[0]  # non-zero origin, anisotropic
    centre = (box[:3] + box[3:]) / 2
    np.testing.assert_allclose(g.to_world(centre)[0], [float(rows[0][c]) for c in ("coordX", "coordY", "coordZ")], atol=1e-3)
    # the box spans the diameter in mm along each axis (unless clipped by the scan's edge)
    np.testing.assert_allclose((box[3:] - box[:3]) * g.array_spacing, float(rows[0]["diameter_mm"]), rtol=1e-6)
    image = data.load_case(k)[0]
    assert image[tuple(centre.astype(int))] > -300 > np.median(image)  # the nodule is dense, the lung is not
    assert sum(len(n) for n in data.hard_negatives) > 0  # vessel points of candidates.csv (class 0)


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("line, expected", [
    ("{uid},1,2,x,5", "line 2 has a value that is not a number"),
    ("{uid},1,2,3,-5", "line 2: diameter_mm is -5; it must be positive"),
    ("{uid},9999,2,3,5", "lies outside scan"),
])
def test_bad_annotations_are_one_line_naming_the_file(tmp_path, luna, line, expected):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    uid = read_luna16(luna).case_ids[0]
    _write(copy / "annotations.csv", "seriesuid,coordX,coordY,coordZ,diameter_mm\n" + line.format(uid=uid) + "\n")
    with pytest.raises(MedsightError, match=expected) as info:
        read_luna16(copy)
    assert "annotations.csv" in str(info.value)


def test_rows_for_absent_scans_are_counted_not_kept(tmp_path, luna):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    with open(copy / "annotations.csv", "a") as handle:
        handle.write("1.2.3.not.here,0,0,0,6\n")
    data = read_luna16(copy)
    assert data.summary()["annotations_without_scan"] == 1


def test_a_spreadsheet_saved_csv_with_bom_and_crlf_is_still_luna16(tmp_path, luna):
    """Excel writes a byte-order mark and CRLF: the folder must not fall through to class folders (subset0/1)."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    for name in ("annotations.csv", "candidates.csv"):
        text = (luna / name).read_text(encoding="utf-8")
        (copy / name).write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    assert detect_format(copy) == ("luna16", "detection")
    data, original = read_luna16(copy), read_luna16(luna)
    for got, expected in zip(data.boxes, original.boxes):
        np.testing.assert_allclose(got, expected)
    assert sum(map(len, data.hard_negatives)) == sum(map(len, original.hard_negatives))


def test_check_finds_a_scan_whose_raw_file_is_missing(tmp_path, luna):
    import shutil

    from medsight.api import check

    copy = tmp_path / "copy"
    shutil.copytree(luna, copy)
    raw = sorted(copy.rglob("*.raw"))[-1]
    raw.unlink()
    read_luna16(copy)  # the header alone reads
    with pytest.raises(MedsightError) as info:
        check(copy)
    assert raw.with_suffix(".mhd").name in str(info.value) and "\n" not in str(info.value)


def test_world_plan_cache_and_submission(tmp_path, luna, cache_in_tmp):
    from medsight import api
    from medsight.data.splits import all_training_cases
    from medsight.tasks.detection.world import grid_ratio

    run = tmp_path / "run"
    plan = api.plan(luna, run)
    data = read_luna16(luna)
    train = all_training_cases(data)  # the plan is made from every fold's training cases
    # nnU-Net's median spacing (z anisotropic but under 3x), coarsened only where the small boxes allow
    median = np.median([data.geometries[i].array_spacing for i in train], axis=0)
    assert np.all(np.asarray(plan["target_spacing"]) >= median - 1e-3)
    np.testing.assert_allclose(np.asarray(plan["anchor_shapes_mm"]), np.asarray(plan["anchor_shapes"]) * plan["target_spacing"], rtol=0.05)
    # prediction slides windows larger than the training patch (192 voxels, a multiple of the size divisor)
    assert all(w % plan["size_divisor"] == 0 and 192 <= w < 192 + plan["size_divisor"] for w in plan["inference_window"])
    plan["iterations_per_epoch"] = 2
    plan["patch_size"] = [16, 32, 32]
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    api.train(luna, run, epochs=1, batch_size=1)
    cached = sorted(cache_in_tmp.rglob("*_image.npy"))
    assert len(cached) >= len(train)
    k = int(train[0])
    array = np.load(next(p for p in cached if p.name.startswith(data.case_ids[k])), mmap_mode="r")
    expected = np.round(np.asarray(data.shapes[k]) * grid_ratio(data.shapes[k], plan, data.geometries[k].array_spacing))
    assert tuple(array.shape[1:]) == tuple(expected.astype(int)) and isinstance(array, np.memmap)
    result = api.evaluate(run, split="test")
    assert result["metrics"]["froc_rule"] == "luna16" and 0.0 <= result["metrics"]["cpm"] <= 1.0
    rows = list(csv.reader(open(run / "eval" / "test" / "predictions" / "submission.csv")))
    assert rows[0] == ["seriesuid", "coordX", "coordY", "coordZ", "probability"]
    records = json.loads((run / "eval" / "test" / "predictions" / "results.json").read_text(encoding="utf-8"))
    assert len(rows) - 1 == len(records)
    if records:  # the submission's centres are the world centres of the boxes
        assert [float(v) for v in rows[1][1:4]] == records[0]["bbox_world"]["center"]
    scan = data.sources[int(data.splits["test"][0])][0]
    api.predict([run], [scan], tmp_path / "pred")
    assert (tmp_path / "pred" / "submission.csv").read_text(encoding="utf-8").startswith("seriesuid,coordX")


@pytest.mark.parametrize("window", [None, [64, 64, 64]])  # 32^3 windows, or one window over the whole grid
def test_world_chain_puts_a_found_box_back_at_the_nodule_in_mm(tmp_path, cache_in_tmp, window):
    """One bright sphere in an anisotropic scan with an odd origin: a stand-in detector that boxes the bright
    voxels on the resampled grid gives back the annotated centre in world mm, and CPM 1."""
    import SimpleITK as sitk

    from medsight.tasks.detection.task import DetectionTask
    from tests.detection.test_task import BrightBox

    spacing, origin = (0.8, 0.7, 2.5), (-150.0, 40.0, -300.0)
    zz, yy, xx = np.meshgrid(*(np.arange(n) + 0.5 for n in (20, 48, 48)), indexing="ij")
    centre_vox = np.array([9.5, 30.0, 17.0])  # (z, y, x) continuous
    distance = np.sqrt(((zz - centre_vox[0]) * spacing[2]) ** 2 + ((yy - centre_vox[1]) * spacing[1]) ** 2
                       + ((xx - centre_vox[2]) * spacing[0]) ** 2)
    volume = np.where(distance <= 6.0, 100, -1000).astype(np.int16)
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    data = tmp_path / "luna"
    (data / "subset0").mkdir(parents=True)
    sitk.WriteImage(image, str(data / "subset0" / "1.2.3.mhd"))
    world = np.asarray(origin) + (centre_vox[::-1] - 0.5) * np.asarray(spacing)
    (data / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3,%g,%g,%g,12\n" % tuple(world), encoding="utf-8")
    dataset = read_luna16(data)
    plan = {"spatial_dims": 3, "in_channels": 1, "num_classes": 1, "target_spacing": [1.25, 1.0, 1.0], "patch_size": [32, 32, 32],
            "size_divisor": 8, "window_overlap": 0.25,
            "normalization": {"clip": [-1000.0, 100.0], "mean": [-1000.0], "std": [1.0]},
            **({"inference_window": window} if window else {})}
    task = DetectionTask(plan, {"classes": ["nodule"]})
    found = task.predict_case([BrightBox()], dataset, 0)  # windows over the 40x34x38 grid
    box = found["boxes"][0]
    found_mm = dataset.geometries[0].to_world((box[:3] + box[3:]) / 2)[0]
    assert np.linalg.norm(found_mm - world) < 1.0  # within a millimetre of the annotation
    result, _ = task.score_cases([BrightBox()], dataset, np.array([0]))
    assert result["metrics"]["cpm"] == 1.0 and result["metrics"]["froc_rule"] == "luna16"


def test_patches_from_a_memory_mapped_scan_centre_on_nodules_and_hard_negatives(tmp_path):
    import torch

    from medsight.tasks.detection.data import sample_patch
    from medsight.tasks.detection.world import WorldCase

    volume = np.arange(20 * 30 * 40, dtype=np.float32).reshape(1, 20, 30, 40)
    np.save(tmp_path / "scan.npy", volume)
    case = WorldCase(tmp_path / "scan.npy", np.array([[2.0, 3, 4, 6, 7, 8]]), np.array([0]), np.array([[15.0, 25, 35]]))
    assert isinstance(case.image, np.memmap)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        patch, boxes, _ = sample_patch(case, [8, 8, 8], True, g)
        assert len(boxes) == 1  # the nodule is in every positive patch...
        start = np.unravel_index(int(patch[0, 0, 0, 0]), volume.shape[1:])
        np.testing.assert_array_equal(patch[0].numpy(), volume[0, start[0]:start[0] + 8, start[1]:start[1] + 8, start[2]:start[2] + 8])
        patch, boxes, _ = sample_patch(case, [8, 8, 8], False, g, hard_negative=True)
        start = np.array(np.unravel_index(int(patch[0, 0, 0, 0]), volume.shape[1:]))
        assert np.all(start <= [15, 25, 35]) and np.all(start + 8 > [15, 25, 35]) and len(boxes) == 0  # ...and the vessel point
