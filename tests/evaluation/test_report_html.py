"""The HTML report writer and the figure helpers: one self-contained file, valid PNGs."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsight.errors import MedsightError
from medsight.report import plots
from medsight.report.html import Section, format_value, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_side: int = 100) -> None:
    assert path.is_file() and path.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(path) as image:
        assert min(image.size) >= min_side


def test_report_embeds_images_and_shows_headline_with_ci(tmp_path: Path):
    figure = plots.curve({"lesions": ([0.125, 1, 8], [0.5, 0.7, 0.9])}, tmp_path / "froc.png",
                         xlabel="false positives per scan", ylabel="sensitivity", xscale="log", points=True)
    sections = [
        Section("FROC <curve>", how_to_read="Higher is better.", images=[figure],
                table=[{"fp per scan": 0.125, "sensitivity": 0.5}, {"fp per scan": 8, "sensitivity": None}]),
        Section("Notes", html="<p id='free'>free text</p>", table=[["class", "dice"], ["liver & spleen", 0.91234]]),
        Section("Lost figure", images=[tmp_path / "absent.png"]),
    ]
    path = write_report(tmp_path / "out" / "report.html", "Detection: <nodules>",
                        {"cpm": {"value": 0.8123, "ci95": [0.75, 0.86]}, "dice": (0.9, [0.85, 0.93]), "cases": 12},
                        sections, details={"run": "/runs/a", "split": "test"}, subtitle="unet · 12 cases")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>")
    assert "Detection: &lt;nodules&gt;" in text and "FROC &lt;curve&gt;" in text and "liver &amp; spleen" in text
    assert "<p id='free'>free text</p>" in text  # section html is a trusted fragment
    assert "95% CI 0.750 to 0.860" in text and "95% CI 0.850 to 0.930" in text and ">0.812<" in text
    assert "CPM" in text and "How to read this: Higher is better." in text and ">n/a<" in text and ">0.912<" in text
    assert "(figure absent.png is missing)" in text
    assert text.index("About this evaluation") > text.index("Lost figure") and "<td>/runs/a</td>" in text
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(embedded) == 1 and base64.b64decode(embedded[0]) == figure.read_bytes()
    # self-contained: no external resources
    assert not re.search(r'(src|href)="(?!data:|#)', text)


def test_format_value():
    assert format_value(0.123456) == "0.123" and format_value(None) == "n/a" and format_value(float("nan")) == "n/a"
    assert format_value(12) == "12" and format_value(True) == "yes" and format_value(12345.6) == "1.23e+04"
    assert format_value([0.1, 0.25]) == "0.100, 0.250"


def test_curve_and_roc_pr_plots(tmp_path: Path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    targets = np.eye(3, dtype=int)[labels]
    scores = np.clip(0.5 * targets + 0.5 * rng.random((90, 3)), 0, 1)
    assert_png(plots.roc_curves(targets, scores, tmp_path / "roc.png", ["a", "b", "c"], [("point", 0.2, 0.8)]))
    assert_png(plots.pr_curves(targets[:, 1], scores[:, 1], tmp_path / "pr.png", ["b"]))
    with pytest.raises(MedsightError, match="differ in shape"):
        plots.roc_curves(targets, scores[:, :2], tmp_path / "bad.png")


def test_confusion_calibration_and_box_plots(tmp_path: Path):
    rng = np.random.default_rng(1)
    assert_png(plots.confusion_matrix_plot([[5, 1, 0], [2, 7, 1], [0, 0, 0]], tmp_path / "cm.png", ["a", "b", "c"]))
    confidence = rng.random(200)
    assert_png(plots.calibration_plot(confidence, rng.random(200) < confidence, tmp_path / "cal.png", ece=0.05))
    assert_png(plots.box_plot({"liver": rng.random(20), "tumour": rng.random(5)}, tmp_path / "box.png",
                              ylabel="Dice", reference=0.5, reference_label="threshold"))


def test_training_curves_from_log(tmp_path: Path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,seconds,train_loss,val_loss,auc,lr\n1,2.0,0.9,0.8,0.6,0.001\n2,2.1,0.7,0.75,,0.0005\n"
                   "3,2.0,0.5,0.7,0.8,0.0001\n")
    assert_png(plots.training_curves(log, tmp_path / "curves.png", best_epoch=3))
    columns = plots.read_log(log)
    assert columns["auc"][0] == 0.6 and np.isnan(columns["auc"][1])
    with pytest.raises(MedsightError, match="cannot be read"):
        plots.training_curves(tmp_path / "missing.csv", tmp_path / "x.png")
    (tmp_path / "empty.csv").write_text("epoch,train_loss\n", encoding="utf-8")
    with pytest.raises(MedsightError, match="no epochs"):
        plots.read_log(tmp_path / "empty.csv")


def test_image_grid_2d_rgb_and_3d_middle_slice(tmp_path: Path):
    volume = np.zeros((1, 9, 16, 16), np.float32)
    volume[0, 4, 4:12, 4:12] = 1.0  # only the middle slice holds the square
    shown = plots.display_slice(volume)
    assert shown.shape == (16, 16) and shown[8, 8] == 1.0 and shown[0, 0] == 0.0
    rgb = np.random.default_rng(2).integers(0, 255, (3, 20, 20)).astype(np.uint8)
    assert plots.display_slice(rgb).shape == (20, 20, 3)
    images = [volume, rgb, np.ones((24, 24), np.uint16)]
    assert_png(plots.image_grid(images, ["a\ntrue: x", "b", "c"], tmp_path / "grid.png", columns=2, title="t"))
    with pytest.raises(MedsightError, match="cannot display"):
        plots.display_slice(np.zeros((1, 2, 3, 4, 5)))
