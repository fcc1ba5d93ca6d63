"""Tiled detection of large 2D images: the plan's scale and tiles, the tile grid, and boxes merged back."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from medsight.tasks.detection.data import prepare_record
from medsight.tasks.detection.infer import detect_prepared
from medsight.tasks.detection.plan import make_detection_plan
from medsight.tasks.detection.tiling import (choose_scale_and_tiles, merge_tile_boxes, read_case_near_scale,
                                             tile_grid, tile_starts)
from tests.detection.test_task import BrightBox  # the stand-in detector of the window tests


def test_tile_starts_cover_the_image_with_the_overlap():
    assert tile_starts(200, 256, 0.25) == [0]
    # 450 px in 256 px tiles overlapping by at least 25%: a step of at most 192, so three tiles, evenly spread
    assert tile_starts(450, 256, 0.25) == [0, 97, 194]
    assert tile_grid([100, 450], [256, 256], 0.25) == [[0, 0], [0, 97], [0, 194]]


def test_plan_scale_and_tiles_from_box_statistics():
    # a 4288 x 2848 photograph with 200 px boxes: fitting 320 px would leave them 15 px, so the median box is
    # kept at 32 px (scale 0.16), the 456 x 686 result is cut into 256 px tiles overlapping by the 25% floor
    choice = choose_scale_and_tiles([2848, 4288], np.full((50, 2), 200.0), divisor=32)
    assert choice["scale"] == pytest.approx(0.16)
    assert choice["tiled"] and choice["patch_size"] == [256, 256] and choice["window_overlap"] == 0.25
    assert choice["scaled_median_shape"] == [455.7, 686.1] and choice["median_box_at_scale"] == 32.0
    # 640 x 480 with 100 px boxes: fitting 320 px (scale 0.5) keeps them at 50 px; one input, not tiled
    choice = choose_scale_and_tiles([480, 640], np.full((50, 2), 100.0), divisor=32)
    assert choice["scale"] == 0.5 and not choice["tiled"] and choice["patch_size"] == [256, 320]
    # a fifth of the boxes 10 px wide: the small-box floor (8 px at the 10th percentile) wins, scale 0.8,
    # and the 384 x 512 result is tiled; tiles overlap by the wide boxes' 80 px over 256 (0.3125)
    sizes = np.array([[10.0, 10.0]] * 10 + [[100.0, 100.0]] * 40)
    choice = choose_scale_and_tiles([480, 640], sizes, divisor=32)
    assert choice["scale"] == pytest.approx(0.8) and choice["tiled"] and choice["patch_size"] == [256, 256]
    assert choice["window_overlap"] == pytest.approx(80 / 256)
    # boxes larger than the image's scale would need: never enlarged
    assert choose_scale_and_tiles([100, 100], np.full((5, 2), 4.0), divisor=32)["scale"] == 1.0


def test_make_detection_plan_tiles_a_large_image_set():
    rng = np.random.default_rng(0)
    boxes = [np.array([[100.0, 100.0, 300.0, 300.0], [900.0, 1500.0, 1100.0, 1700.0]]) for _ in range(4)]
    dataset = SimpleNamespace(spatial_dims=2, splits={"train": np.arange(4)}, shapes=[(1600, 2400)] * 4, boxes=boxes,
                              labels=[np.array([0, 1])] * 4, classes=["a", "b"],
                              load_case=lambda i: rng.uniform(0, 255, (3, 1600, 2400)).astype(np.float32))
    plan = make_detection_plan(dataset)
    assert plan["scale"] == pytest.approx(0.16) and plan["patch_size"] == [256, 256]
    assert plan["tiling"] == {"tiled": True, "scaled_median_shape": [256.0, 384.0], "median_box_at_scale": 32.0}
    assert plan["box_size_percentiles"]["50"] == pytest.approx([32.0, 32.0])


def test_merge_drops_cut_boxes_and_duplicates():
    found = [([0, 0], {"boxes": np.array([[10.0, 32.0, 20.0, 44.0], [5.0, 5.0, 9.0, 9.0], [30.0, 40.0, 40.0, 49.5]]),
                       "scores": np.array([0.9, 0.8, 0.5]), "labels": np.array([0, 0, 1])}),
             ([0, 30], {"boxes": np.array([[10.0, 2.0, 20.0, 14.0], [10.0, 0.0, 20.0, 8.0], [30.0, 10.0, 40.0, 25.0]]),
                        "scores": np.array([0.7, 0.6, 0.4]), "labels": np.array([0, 0, 1])})]
    merged = merge_tile_boxes(found, tile=[50, 50], shape=[50, 80])
    # cut by an inner tile edge: the first tile's box ending at column 49.5 (its edge is at 50, inside the
    # image) and the second tile's box starting at its column 0; the second tile's (10, 2)-(20, 14) is the
    # first tile's (10, 32)-(20, 44) again, which NMS keeps once, at the higher score
    order = np.lexsort((merged["boxes"][:, 1], merged["boxes"][:, 0]))
    np.testing.assert_allclose(merged["boxes"][order], [[5, 5, 9, 9], [10, 32, 20, 44], [30, 40, 40, 55]])
    np.testing.assert_allclose(merged["scores"][order], [0.8, 0.9, 0.4])
    assert merged["labels"][order].tolist() == [0, 0, 1]


def test_tiled_round_trip_finds_a_box_at_a_tile_edge_once_in_full_image_coordinates(tmp_path):
    from PIL import Image

    # a 1200 x 1800 JPEG with one bright box (rows 400..560, columns 900..1060); the plan's scale 0.25 makes it
    # 300 x 450 with the box at rows 100..140, columns 225..265, cut by the inner edges of several 128 px tiles
    picture = np.zeros((1200, 1800, 3), np.uint8)
    picture[400:560, 900:1060] = 255
    path = tmp_path / "photo.jpg"
    Image.fromarray(picture).save(path, quality=95)
    dataset = SimpleNamespace(sources=[[path]], shapes=[(1200, 1800)], load_case=None)
    plan = {"task": "detection", "spatial_dims": 2, "in_channels": 3, "scale": 0.25, "patch_size": [128, 128],
            "size_divisor": 32, "window_overlap": 0.25,
            "normalization": {"clip": [0.0, 255.0], "mean": [0.0] * 3, "std": [255.0] * 3}}
    image, shape = read_case_near_scale(dataset, 0, plan)
    assert shape == (1200, 1800) and image.shape == (3, 300, 450)  # decoded at a quarter, not in full
    record = prepare_record(image, plan, shape)
    grid = tile_grid([300, 450], [128, 128], 0.25)
    holding = [s for s in grid if s[0] < 140 and s[0] + 128 > 100 and s[1] < 265 and s[1] + 128 > 225]
    assert len(holding) >= 4  # several tiles see a part of the box...
    found = detect_prepared([BrightBox()], record.image, plan, torch.device("cpu"))
    assert len(found["boxes"]) == 1 and found["labels"].tolist() == [0]  # ...and it is reported once
    np.testing.assert_allclose(record.invert_boxes(found["boxes"]), [[400, 900, 560, 1060]], atol=4)


def test_predict_decodes_a_photograph_at_the_plans_scale_and_gives_boxes_in_full_image_pixels(tmp_path):
    from PIL import Image

    from medsight.tasks.detection.predict import predict_detection

    # a 1200 x 1600 JPEG with a bright box at rows 400..560, columns 900..1060; the plan's scale 0.2 makes the
    # picture 240 x 320 (decoded at 1/4 by libjpeg, then resized), tiled in 128 px tiles
    picture = np.zeros((1200, 1600, 3), np.uint8)
    picture[400:560, 900:1060] = 255
    Image.fromarray(picture).save(tmp_path / "photo.jpg", quality=95)
    plan = {"task": "detection", "spatial_dims": 2, "in_channels": 3, "scale": 0.2, "patch_size": [128, 128],
            "size_divisor": 32, "window_overlap": 0.25,
            "normalization": {"clip": [0.0, 255.0], "mean": [0.0] * 3, "std": [255.0] * 3}}
    task = SimpleNamespace(plan=plan, info={"classes": ["lesion"]}, device=torch.device("cpu"))
    rows = predict_detection(task, None, [BrightBox()], [tmp_path / "photo.jpg"], tmp_path / "out")
    (found,) = rows[0]["detections"]
    x, y, w, h = found["bbox"]  # COCO order, full-image pixels: one decoded pixel is 5 source pixels
    np.testing.assert_allclose([y, x, y + h, x + w], [400, 900, 560, 1060], atol=5)
    with Image.open(rows[0]["overlay"]) as overlay:
        assert overlay.size == (320, 240)  # drawn on the decoded picture: the photograph was never decoded in full


class BrightBlobs(torch.nn.Module):
    """A stand-in detector: one box per connected group of voxels above 0.5 in each window (score 0.9), and a
    record of the window shapes it was given."""

    def __init__(self):
        super().__init__()
        self.windows = []

    def forward(self, x):
        from scipy import ndimage

        out = []
        for image in x:
            self.windows.append(tuple(image.shape[1:]))
            labelled, _ = ndimage.label(image[0].numpy() > 0.5)
            boxes = [[s.start for s in found] + [s.stop for s in found] for found in ndimage.find_objects(labelled)]
            out.append({"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 2 * (x.dim() - 2)),
                        "scores": torch.full((len(boxes),), 0.9), "labels": torch.zeros(len(boxes), dtype=torch.long)})
        return out


def test_a_larger_inference_window_finds_the_boxes_that_patch_windows_find():
    # a 100 x 90 x 120 scan with five blobs, some across the edges of 24^3 windows and of 64^3 windows
    image = torch.zeros(1, 100, 90, 120)
    blobs = [(14, 18, 5, 8, 8, 4), (58, 60, 61, 6, 7, 9), (90, 2, 110, 9, 6, 8), (40, 80, 30, 5, 5, 5), (0, 40, 60, 4, 8, 6)]
    for z, y, x, dz, dy, dx in blobs:
        image[0, z:z + dz, y:y + dy, x:x + dx] = 1.0
    expected = sorted([z, y, x, z + dz, y + dy, x + dx] for z, y, x, dz, dy, dx in blobs)
    plan = {"spatial_dims": 3, "patch_size": [24, 24, 24], "size_divisor": 8, "window_overlap": 0.4}
    patch_detector, window_detector = BrightBlobs(), BrightBlobs()
    by_patch = detect_prepared([patch_detector], image, plan, torch.device("cpu"))
    by_window = detect_prepared([window_detector], image, {**plan, "inference_window": [64, 64, 64]}, torch.device("cpu"))
    assert sorted(by_patch["boxes"].tolist()) == expected == sorted(by_window["boxes"].tolist())
    assert set(window_detector.windows) == {(64, 64, 64)}  # never larger than the scan needs, never below the patch
    # 2 x 2 x 3 windows of 64^3 against 7 x 6 x 8 of 24^3
    assert len(window_detector.windows) == 12 and len(patch_detector.windows) == 336
    # a scan smaller than the inference window is one window of its own size (rounded up to the divisor)
    small = BrightBlobs()
    detect_prepared([small], image[:, :40, :30, :50], {**plan, "inference_window": [64, 64, 64]}, torch.device("cpu"))
    assert small.windows == [(40, 32, 56)]


def test_inference_windows_overlap_as_patch_windows_do_and_onnx_engines_keep_the_patch():
    from medsight.tasks.detection.infer import prediction_window

    plan = {"patch_size": [24, 32, 24], "size_divisor": 8, "window_overlap": 0.4, "inference_window": [64, 64, 64]}
    window, overlap = prediction_window([BrightBlobs()], plan, [300, 50, 120])
    assert window == [64, 56, 64] and overlap == pytest.approx(0.4 * 32 / 56)  # y: the scan's 50, rounded up to 56
    for axis, size in enumerate([300, 50, 120]):  # neighbours share at least 0.4 of a patch side, in voxels
        starts = tile_starts(size, window[axis], overlap)
        assert all(window[axis] - (b - a) >= 0.4 * plan["patch_size"][axis] for a, b in zip(starts, starts[1:]))
    assert prediction_window([lambda x: x], plan, [300, 50, 120]) == ([24, 32, 24], 0.4)  # not a torch module


@pytest.mark.parametrize("model", ["retinanet", "faster_rcnn"])
def test_box_limits_grow_with_the_window_and_come_back(model):
    from medsight.models.registry import create_model
    from medsight.tasks.detection.infer import box_limits_scaled

    detector = create_model(model, task="detection", spatial_dims=3, in_channels=1, num_classes=1, anchor_shapes=[[8.0, 8.0, 8.0]],
                           feature_map_scales=[1, 2, 4, 8])

    def limits():
        owner = getattr(detector, "box_selector", detector)
        names = ("topk_candidates_per_level", "detections_per_img") if owner is not detector else \
            ("pre_nms", "post_nms", "detections_per_image")
        return [getattr(owner, name) for name in names]

    before = limits()
    with box_limits_scaled([detector], 8.0):
        grown = limits()
    flat = (lambda values: [v for value in values for v in (value if isinstance(value, tuple) else (value,))])
    assert flat(grown) == [8 * v for v in flat(before)] and limits() == before
