"""`medsight compare`: a paired bootstrap difference checked by hand, and two tiny runs compared end to end."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score


def _fixed_predictions():
    rng = np.random.default_rng(4)
    y_true = rng.integers(0, 2, 60)
    def model(noise):
        score = np.clip(0.5 + (y_true - 0.5) * 0.4 + rng.normal(0, noise, 60), 0.01, 0.99)
        probs = np.stack([1 - score, score], axis=1)
        return {"y_true": y_true, "probs": probs, "y_pred": (score >= 0.5).astype(int)}
    return model(0.35), model(0.2)


def test_paired_difference_matches_a_hand_computed_bootstrap():
    from medsight.evaluation.compare import paired_difference

    a, b = _fixed_predictions()
    result = paired_difference(a, b, ("balanced_accuracy", "auc"), n_boot=300, seed=11)
    # the point difference: scikit-learn on all cases
    assert result["auc"]["difference"] == pytest.approx(
        roc_auc_score(b["y_true"], b["probs"][:, 1]) - roc_auc_score(a["y_true"], a["probs"][:, 1]))
    assert result["balanced_accuracy"]["difference"] == pytest.approx(
        balanced_accuracy_score(b["y_true"], b["y_pred"]) - balanced_accuracy_score(a["y_true"], a["probs"].argmax(1)))
    # the interval: the same draws (one generator, seed 11, 300 x 60 indices), each scored by scikit-learn
    draws = np.random.default_rng(11).integers(0, 60, size=(300, 60))
    deltas = {"auc": [], "balanced_accuracy": []}
    for idx in draws:
        t = a["y_true"][idx]
        deltas["auc"].append(roc_auc_score(t, b["probs"][idx, 1]) - roc_auc_score(t, a["probs"][idx, 1]))
        deltas["balanced_accuracy"].append(balanced_accuracy_score(t, b["y_pred"][idx])
                                           - balanced_accuracy_score(t, a["y_pred"][idx]))
    for name, values in deltas.items():
        assert result[name]["ci95"] == pytest.approx(np.percentile(values, [2.5, 97.5]), abs=1e-12)
        assert result[name]["share_b_better"] == pytest.approx(np.mean(np.array(values) > 0))


def test_compare_two_runs(run_a, run_b, tmp_path, capsys):
    from medsight.cli import main
    from medsight.evaluation.compare import compare_runs, read_predictions

    page = tmp_path / "compare.html"
    assert main(["compare", str(run_a), str(run_b), "--out", str(page)]) == 0
    printed = capsys.readouterr().out
    assert "balance" in printed and "epochs" in printed  # the settings that differ
    assert "paired differences against run_a" in printed
    html = page.read_text(encoding="utf-8")
    assert "Paired differences against run_a" in html and html.count("data:image/png;base64") >= 5

    result = compare_runs([run_a, run_b], n_boot=200)
    assert result["differing"] == ["epochs", "balance"]
    a = read_predictions(run_a / "eval/test/predictions/predictions.csv")
    b = read_predictions(run_b / "eval/test/predictions/predictions.csv")
    expected = balanced_accuracy_score(b["y_true"], b["y_pred"]) - balanced_accuracy_score(a["y_true"], a["y_pred"])
    assert result["differences"]["run_b"]["balanced_accuracy"]["difference"] == pytest.approx(expected)


def test_compare_groups_seeds(run_a, run_b, tmp_path):
    import shutil

    from medsight.evaluation.compare import compare_runs
    from medsight.jsonio import load_json, save_json

    seed_copy = tmp_path / "run_a_seed1"
    shutil.copytree(run_a, seed_copy)
    config = load_json(seed_copy / "config.json")
    save_json(seed_copy / "config.json", {**config, "seed": 1})
    result = compare_runs([run_a, seed_copy, run_b], n_boot=50)
    groups = {g["group"]: g for g in result["groups"]}
    assert groups["epochs=1, balance=none"]["runs"] == 2 and groups["epochs=2, balance=weights"]["runs"] == 1


def test_compare_refuses_runs_on_other_cases(run_a, tmp_path, capsys):
    import shutil

    from medsight.cli import main

    other = tmp_path / "other"
    shutil.copytree(run_a, other)
    csv_path = other / "eval/test/predictions/predictions.csv"
    csv_path.write_text(csv_path.read_text(encoding="utf-8").replace("test_", "elsewhere_"))
    assert main(["compare", str(run_a), str(other), "--out", str(tmp_path / "c.html")]) == 2
    assert "share no test case" in capsys.readouterr().err


def _segmentation_run(folder, rows, **config):
    from medsight.jsonio import save_json

    folder.mkdir()
    save_json(folder / "config.json", {"task": "segmentation", "data": "d", "model": "unet", "seed": 0, **config})
    means = {m: float(np.mean([r[m] for r in rows])) for m in ("dice", "hd95")}
    save_json(folder / "eval/test/metrics.json", {"task": "segmentation", "num_cases": len(rows), "metrics": means,
                                                  "per_case": rows})
    return folder


def test_segmentation_runs_get_a_paired_difference_of_per_case_means(tmp_path):
    from medsight.evaluation.compare import compare_runs

    rng = np.random.default_rng(2)
    cases = [f"case_{i}" for i in range(12)]
    dice_a, dice_b = rng.uniform(0.6, 0.9, 12), rng.uniform(0.65, 0.95, 12)
    hd_a, hd_b = rng.uniform(1, 5, 12), rng.uniform(1, 5, 12)
    hd_b[3] = np.inf  # an empty prediction: left out of the hd95 pairs
    a = _segmentation_run(tmp_path / "a", [{"case": c, "dice": d, "hd95": h} for c, d, h in zip(cases, dice_a, hd_a)])
    b = _segmentation_run(tmp_path / "b", [{"case": c, "dice": d, "hd95": h} for c, d, h in zip(cases, dice_b, hd_b)],
                          model="dynunet")
    result = compare_runs([a, b], n_boot=400)
    dice = result["differences"]["b"]["dice"]
    assert dice["difference"] == pytest.approx(np.mean(dice_b - dice_a))
    draws = np.random.default_rng(0).integers(0, 12, size=(400, 12))
    by_hand = [np.mean(dice_b[idx]) - np.mean(dice_a[idx]) for idx in draws]
    assert dice["ci95"] == pytest.approx(np.percentile(by_hand, [2.5, 97.5]))
    kept = np.isfinite(hd_b)
    assert result["differences"]["b"]["hd95"]["cases"] == 11
    assert result["differences"]["b"]["hd95"]["difference"] == pytest.approx(np.mean(hd_b[kept] - hd_a[kept]))
    assert result["differing"] == ["model"]
