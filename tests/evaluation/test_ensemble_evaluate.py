"""medsight evaluate RUN RUN: averaged probabilities, ensemble metrics with each member's beside them."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from medsight.cli import main


def probabilities(path):
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    columns = [k for k in rows[0] if k.startswith("prob_")]
    return [r["case_id"] for r in rows], np.array([[float(r[k]) for k in columns] for r in rows])


@pytest.fixture(scope="module")
def members(tiny_npz, tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    runs = []
    for seed in (0, 1):
        run = root / f"seed{seed}"
        assert main(["train", str(tiny_npz), "--out", str(run), "--epochs", "1", "--model", "lenet5",
                     "--seed", str(seed)]) == 0
        runs.append(run)
    return runs


def test_ensemble_metrics_hold_every_member_and_mean_probabilities(members, tmp_path):
    out = tmp_path / "ensemble"
    assert main(["evaluate", *map(str, members), "--split", "test", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert [m["run"] for m in metrics["members"]] == [str(r.resolve()) for r in members]
    for member, run in zip(metrics["members"], members):
        assert member["metrics"] == json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
    assert metrics["split"] == "test" and "auc" in metrics["metrics"] and (out / "report.html").is_file()

    cases, ensemble = probabilities(out / "predictions" / "predictions.csv")
    member_probs = [probabilities(r / "eval" / "test" / "predictions" / "predictions.csv") for r in members]
    assert all(c == cases for c, _ in member_probs)
    assert not np.allclose(member_probs[0][1], member_probs[1][1], atol=1e-3)  # members differ: the mean is a test
    np.testing.assert_allclose(ensemble, np.mean([p for _, p in member_probs], axis=0), atol=1e-6)


def test_default_output_is_beside_the_first_runs_evaluation(members):
    assert main(["evaluate", *map(str, members)]) == 0
    assert (members[0] / "eval" / "test-ensemble" / "metrics.json").is_file()


def test_runs_of_different_classes_are_refused(members, tiny_npz, tmp_path, capsys):
    arrays = dict(np.load(tiny_npz))
    arrays["label_names"] = np.array(["healthy", "ill"])
    other_data = tmp_path / "other.npz"
    np.savez(other_data, **arrays)
    other = tmp_path / "other"
    assert main(["train", str(other_data), "--out", str(other), "--epochs", "1", "--model", "lenet5"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(members[0]), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot be ensembled" in err


@pytest.mark.parametrize("multilabel", [False, True])
def test_mean_probabilities_module_returns_what_the_task_turns_into_the_mean(multilabel):
    from medsight.evaluation.ensemble import MeanProbabilities

    torch.manual_seed(0)
    members = [torch.nn.Linear(5, 3) for _ in range(3)]
    x = torch.randn(7, 5)
    squash = torch.sigmoid if multilabel else (lambda z: torch.softmax(z, 1))
    expected = torch.stack([squash(m(x).double()) for m in members]).mean(0)
    with torch.no_grad():
        got = squash(MeanProbabilities(members, multilabel)(x))
    torch.testing.assert_close(got, expected, atol=1e-12, rtol=0)


def test_runs_that_differ_only_in_how_they_trained_are_ensembled():
    from medsight.inference.ensemble import plan_differences

    first = {"patch_size": [40, 56, 40], "learning_rate": 0.001, "race": {"winner": "unet"}, "epochs": 300}
    other = {"patch_size": [40, 56, 40], "learning_rate": 0.003, "race": {"winner": "unet_lr3e-3"}, "epochs": 310}
    assert plan_differences(first, other) == []
    assert plan_differences(first, {**other, "patch_size": [32, 48, 32]}) == ["patch_size"]
