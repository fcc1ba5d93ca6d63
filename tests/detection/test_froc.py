"""FROC / CPM by the LUNA16 rule on a hand-built fixture, and the curve reading against scikit-learn's ROC."""

from __future__ import annotations

import numpy as np
import pytest

from medsight.metrics.froc import froc_iou, froc_luna16

REFERENCES = [
    {"case": "A", "centre_mm": (0, 0, 0), "diameter_mm": 10},  # a1
    {"case": "A", "centre_mm": (50, 0, 0), "diameter_mm": 6},  # a2
    {"case": "B", "centre_mm": (0, 0, 0), "diameter_mm": 20},  # b1
    {"case": "D", "centre_mm": (10, 10, 10), "diameter_mm": 4},  # d1, never found
]
PREDICTIONS = [
    {"case": "A", "centre_mm": (1, 1, 1), "score": 0.9},  # a1 (distance 1.7 < 5)
    {"case": "A", "centre_mm": (2, 0, 0), "score": 0.6},  # a1 again: ignored
    {"case": "A", "centre_mm": (52.9, 0, 0), "score": 0.5},  # a2 (2.9 < 3)
    {"case": "A", "centre_mm": (100, 0, 0), "score": 0.8},  # false positive
    {"case": "B", "centre_mm": (9.9, 0, 0), "score": 0.7},  # b1 (9.9 < 10)
    {"case": "B", "centre_mm": (10, 0, 0), "score": 0.95},  # on b1's sphere, not inside: false positive
    {"case": "C", "centre_mm": (0, 0, 0), "score": 0.4},  # a scan without lesions: false positive
    {"case": "D", "centre_mm": (13, 10, 10), "score": 0.3},  # 3 mm from d1 (radius 2): false positive
]


def test_luna16_rule_by_hand():
    out = froc_luna16(PREDICTIONS, REFERENCES)
    # by descending score (FP/scan over 4 scans, sensitivity over 4 lesions):
    # .95 FP (.25, 0)  .9 TP (.25, .25)  .8 FP (.5, .25)  .7 TP (.5, .5)  .5 TP (.5, .75)  .4 FP (.75, .75)  .3 FP (1, .75)
    assert out["sensitivity"] == {"0.125": 0.0, "0.25": 0.25, "0.5": 0.75, "1": 0.75, "2": 0.75, "4": 0.75, "8": 0.75}
    assert out["cpm"] == pytest.approx((0 + 0.25 + 5 * 0.75) / 7)
    assert (out["num_references"], out["num_found"], out["num_scans"]) == (4, 3, 4)
    assert out["curve"]["fp_per_scan"] == [0, 0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0]
    assert out["curve"]["sensitivity"] == [0, 0, 0.25, 0.25, 0.5, 0.75, 0.75, 0.75]


def test_luna16_scans_without_findings_count():
    out = froc_luna16(PREDICTIONS, REFERENCES, n_scans=8)  # 4 more scans with neither candidate nor lesion
    assert out["sensitivity"]["0.125"] == 0.25 and out["sensitivity"]["0.25"] == 0.75
    assert out["cpm"] == pytest.approx((0.25 + 6 * 0.75) / 7)


def test_luna16_no_candidates_and_no_lesions():
    assert froc_luna16([], REFERENCES)["cpm"] == 0.0
    assert np.isnan(froc_luna16(PREDICTIONS, [])["cpm"])


def test_froc_iou_alternative():
    # one scan: a box on the lesion (IoU 1), a second on it (ignored), one elsewhere (false positive)
    out = froc_iou([np.array([[0, 0, 0, 4, 4, 4], [0, 0, 0, 4, 4, 3], [9, 9, 9, 12, 12, 12.0]])],
                   [np.array([0.9, 0.8, 0.7])], [np.array([[0, 0, 0, 4, 4, 4.0]])])
    assert out["sensitivity"]["0.125"] == 1.0 and out["cpm"] == 1.0
    assert out["curve"]["fp_per_scan"] == [0, 0, 1.0]


def reference_luna16(found_scores, fp_scores, num_lesions, n_scans, rates):
    """The LUNA16 script's reading: scikit-learn's ROC over found lesions and false positives, FP scaled per
    scan, sensitivity scaled by the share found, interpolated at the rates."""
    from sklearn.metrics import roc_curve

    truth = np.r_[np.ones(len(found_scores)), np.zeros(len(fp_scores))]
    fpr, tpr, _ = roc_curve(truth, np.r_[found_scores, fp_scores])
    fps = fpr * len(fp_scores) / n_scans
    sens = tpr * len(found_scores) / num_lesions
    return np.interp(rates, fps, sens)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_curve_reading_matches_roc_interpolation(seed):
    rng = np.random.default_rng(seed)
    refs, preds = [], []
    for scan in range(8):
        for _ in range(int(rng.integers(0, 4))):
            refs.append({"case": str(scan), "centre_mm": tuple(rng.uniform(0, 100, 3)), "diameter_mm": 8.0})
    for r in refs:
        if rng.uniform() < 0.7:
            preds.append({"case": r["case"], "centre_mm": tuple(np.add(r["centre_mm"], rng.normal(0, 1, 3))),
                          "score": float(rng.uniform(0.3, 1))})
    for scan in range(8):
        for _ in range(int(rng.integers(0, 6))):
            preds.append({"case": str(scan), "centre_mm": tuple(rng.uniform(200, 300, 3)), "score": float(rng.uniform())})
    out = froc_luna16(preds, refs, n_scans=8)
    found = [p["score"] for p in preds if p["centre_mm"][0] < 150]
    false = [p["score"] for p in preds if p["centre_mm"][0] >= 150]
    rates = [0.125, 0.25, 0.5, 1, 2, 4, 8]
    expected = reference_luna16(np.array(found), np.array(false), len(refs), 8, rates)
    np.testing.assert_allclose(list(out["sensitivity"].values()), expected, atol=1e-12)
