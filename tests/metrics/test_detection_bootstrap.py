"""Detection bootstrap: a resample scored by weights equals DetectionMetric on the images concatenated as drawn."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.metrics.detection import DetectionMetric
from medsight.metrics.detection_bootstrap import NAMES, class_matches, detection_bootstrap_ci, resample_scores


def random_images(rng: np.random.Generator, n_images: int, num_classes: int) -> list[tuple[np.ndarray, ...]]:
    """Reference boxes and jittered, partly spurious predictions with distinct continuous scores."""
    images = []
    for _ in range(n_images):
        n_gt = int(rng.integers(0, 4))
        low = rng.uniform(0, 50, (n_gt, 2))
        gt = np.concatenate([low, low + rng.uniform(5, 15, (n_gt, 2))], 1)
        gl = rng.integers(0, num_classes, n_gt)
        found = gt + rng.normal(0, 2.0, gt.shape)
        spurious = rng.uniform(0, 50, (int(rng.integers(0, 3)), 2))
        pred = np.concatenate([found, np.concatenate([spurious, spurious + 8], 1)])
        pl = np.concatenate([gl, rng.integers(0, num_classes, len(spurious))])
        images.append((pred, rng.uniform(0, 1, len(pred)), pl, gt, gl))
    return images


def metric_of(images, num_classes: int) -> DetectionMetric:
    metric = DetectionMetric(num_classes)
    for pred, scores, pl, gt, gl in images:
        metric.update(pred, scores, pl, gt, gl)
    return metric


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weighted_resample_equals_the_concatenated_images(seed):
    rng = np.random.default_rng(seed)
    images = random_images(rng, 12, num_classes=2)
    metric = metric_of(images, 2)
    per_class = [class_matches(metric, c) for c in range(2)]
    assert resample_scores(per_class, np.ones(12)) == pytest.approx(
        {n: metric.compute()["metrics"][n] for n in NAMES}, abs=1e-12)
    for _ in range(5):
        drawn = np.bincount(rng.integers(0, 12, 12), minlength=12)
        concatenated = [images[i] for i in range(12) for _ in range(drawn[i])]
        expected = metric_of(concatenated, 2).compute()["metrics"]
        assert resample_scores(per_class, drawn.astype(float)) == pytest.approx({n: expected[n] for n in NAMES}, abs=1e-12)


def test_interval_brackets_the_value_and_a_perfect_detector_has_none_of_width():
    rng = np.random.default_rng(3)
    images = random_images(rng, 30, num_classes=1)
    metric = metric_of(images, 1)
    value = metric.compute()["metrics"]["map_50"]
    low, high = detection_bootstrap_ci(metric, n_boot=200)["map_50"]
    assert low < value < high
    perfect = metric_of([(gt, np.linspace(1, 0.5, len(gt)), gl, gt, gl) for _, _, _, gt, gl in images], 1)
    assert detection_bootstrap_ci(perfect, n_boot=50)["map_50"] == [1.0, 1.0]
