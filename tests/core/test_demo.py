"""The demo's index (a row per run with its figure and picture) and progress lines without nan."""

from __future__ import annotations

import math
from functools import partial
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from medsight import demo
from medsight.data.preprocess import bounded_range, intensity_range
from medsight.synthetic.classification import make_classification_npz
from medsight.synthetic.segmentation import make_segmentation_dataset
from medsight.training.loop import epoch_figures


class Rows(HTMLParser):
    """The index table's body rows: the cells' text and the pictures' src."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.in_body = False

    def handle_starttag(self, tag, attrs):
        if tag == "tbody":
            self.in_body = True
        elif self.in_body and tag == "tr":
            self.rows.append({"cells": [], "images": []})
        elif self.in_body and tag == "td":
            self.rows[-1]["cells"].append("")
        elif self.in_body and tag == "img":
            self.rows[-1]["images"].append(dict(attrs)["src"])

    def handle_data(self, data):
        if self.in_body and self.rows and self.rows[-1]["cells"]:
            self.rows[-1]["cells"][-1] += data


def _tiny_npz(folder: Path) -> Path:
    path = folder / "tiny.npz"
    return path if path.is_file() else make_classification_npz(path, n_train=64, n_val=32, n_test=32, seed=3,
                                                               contrast=(0.4, 0.6))


def test_the_index_has_a_row_per_run_with_a_figure_and_a_picture(tmp_path, monkeypatch):
    runs = {"classification": [demo.DemoRun("tiny_classification", "tiny lesions", _tiny_npz, 1, 0.02, "auc",
                                            "plots/roc.png")],
            "segmentation": [demo.DemoRun("tiny_segmentation", "tiny shapes",
                                          partial(make_segmentation_dataset, spatial_dims=2, num_cases=8, size=32),
                                          1, 0.02, "dice", "plots/overlay_*.png")]}
    monkeypatch.setattr(demo, "DEMOS", runs)
    monkeypatch.setattr(demo, "DEFAULT_TASKS", tuple(runs))
    index = demo.run_demo("all", tmp_path / "out")
    assert index == tmp_path / "out" / "index.html"
    parser = Rows()
    parser.feed(index.read_text(encoding="utf-8"))
    assert [row["cells"][0] for row in parser.rows] == ["tiny_classification", "tiny_segmentation"]
    for row, metric in zip(parser.rows, ("ROC AUC", "Dice")):
        assert row["cells"][2] == metric
        value = float(row["cells"][3])  # a number, not "nan" or "not computed"
        assert math.isfinite(value) and 0.0 <= value <= 1.0
        assert len(row["images"]) == 1 and (index.parent / row["images"][0]).is_file()
    # the figure is the one the run's report holds
    import json

    metrics = json.loads((tmp_path / "out" / "tiny_classification" / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert float(parser.rows[0]["cells"][3]) == pytest.approx(metrics["metrics"]["auc"], abs=5e-4)

    # one task again: the index still lists both runs, the earlier one from its folder
    (tmp_path / "out" / "index.html").unlink()
    monkeypatch.setattr(demo, "DEMOS", runs)
    index = demo.run_demo("segmentation", tmp_path / "out")
    parser = Rows()
    parser.feed(index.read_text(encoding="utf-8"))
    assert sorted(row["cells"][0] for row in parser.rows) == ["tiny_classification", "tiny_segmentation"]


def test_an_epoch_without_validation_loss_prints_no_nan():
    # detection validates by mAP / CPM only; a metric undefined on a split is NaN
    line = epoch_figures({"epoch": 3, "train_loss": 0.41, "map_50": 0.8125, "cpm": float("nan"), "seconds": 2.0,
                          "lr": 1e-3})
    assert "nan" not in line.lower()
    assert line == "train_loss 0.41  map_50 0.8125"
    assert "val_loss" not in epoch_figures({"epoch": 1, "train_loss": 0.5, "val_loss": float("nan")})


def test_8bit_images_keep_their_brightest_pixels():
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 200, (1, 16, 16), dtype=np.uint8) for _ in range(3)]
    photos[0][0, 0, 0] = 255  # a small bright finding
    assert bounded_range(photos) == (0.0, 255.0)
    scans = [im.astype(np.float32) for im in photos]  # not 8-bit: the robust percentile range, as before
    assert bounded_range(scans) == intensity_range(scans)
    assert intensity_range(scans)[1] < 255.0
