"""The --minutes race: successive halving's rungs, a clearly better candidate wins, the table reaches plan.json,
metrics.json and the report, and a race started again reuses what it finished."""

from __future__ import annotations

import json

import pytest

from medsight import api
from medsight.errors import MedsightError
from medsight.training import race as racing
from medsight.training.race import halving_rungs, winner_seconds


@pytest.mark.parametrize("candidates, counts", [(2, [(2, 1)]), (3, [(3, 1)]), (4, [(4, 2), (2, 1)]),
                                                (5, [(5, 2), (2, 1)]), (8, [(8, 4), (4, 2), (2, 1)])])
def test_each_rung_keeps_the_better_half(candidates, counts):
    rungs = halving_rungs(candidates, 480.0)
    assert [(r.candidates, r.keep) for r in rungs] == counts
    # every rung spends the same share of the race, split evenly among its candidates
    spent = [r.candidates * (r.seconds - (rungs[i - 1].seconds if i else 0.0)) for i, r in enumerate(rungs)]
    assert spent == pytest.approx([480.0 / len(rungs)] * len(rungs))


def test_four_candidates_in_twenty_minutes():
    rungs = halving_rungs(4, 0.4 * 1200)
    assert [r.seconds for r in rungs] == pytest.approx([60.0, 180.0])  # 1 minute each, then 2 more for the best 2
    # the losers spend 2 x 60 s and 1 x 180 s: the winner has the other 15 minutes
    assert winner_seconds(1200.0, rungs) == pytest.approx(900.0)


@pytest.fixture(scope="module")
def separable_npz(tmp_path_factory):
    """Bright lesions well above the noise: one epoch at a real learning rate separates the classes."""
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(tmp_path_factory.mktemp("race") / "spots.npz", size=16, n_train=64, n_val=32,
                                   n_test=32, lesion_fraction=0.5, seed=5, contrast=(0.6, 0.8), radius=(2.0, 3.0))


# learning rate 0 never moves the weights, so those candidates stay at their initial, chance-level score
CANDIDATES = [{"name": "frozen", "model": "lenet5", "learning_rate": 0.0},
              {"name": "learner", "model": "lenet5", "learning_rate": 3e-3},
              {"name": "frozen_too", "model": "lenet5", "learning_rate": 0.0}]


def test_the_learner_wins_and_the_table_reaches_plan_report_and_metrics(separable_npz, tmp_path, one_thread):
    run = tmp_path / "run"
    base = api.plan(separable_npz, run)
    base.update(race_candidates=CANDIDATES, epochs=3)
    (run / "plan.json").write_text(json.dumps(base))
    summary = api.train(separable_npz, run, minutes=0.15, race=True)

    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    race = plan["race"]
    assert race["winner"] == "learner" and plan["model"] == "lenet5" and plan["learning_rate"] == 3e-3
    assert [r["candidate"] for r in race["table"]] == ["frozen", "learner", "frozen_too"]
    assert [(r["candidates"], r["keep"]) for r in race["rungs"]] == [(3, 1)]
    rows = {r["candidate"]: r for r in race["table"]}
    assert rows["learner"]["kept"] == "winner"
    assert rows["frozen"]["kept"] == rows["frozen_too"]["kept"] == "dropped after rung 1"
    assert rows["learner"]["scores"][0] > max(rows["frozen"]["scores"][0], rows["frozen_too"]["scores"][0]) + 0.1
    assert all(r["cpu_seconds"] > 0 and r["epochs"] >= 1 for r in rows.values())
    # the run in RUN is the winner's, continued from its race checkpoint
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["learning_rate"] == 3e-3 and summary["epochs"] >= rows["learner"]["epochs"]

    result = api.evaluate(run)
    metrics = json.loads((run / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["race"]["winner"] == "learner"
    assert metrics["selection"]["rule"] == "mean" and metrics["selection"]["window"] == 5  # 32 validation images
    assert metrics["selection"]["chosen_epoch"] == summary["best_epoch"]
    assert result["selection"] == metrics["selection"]
    report = (run / "eval" / "test" / "report.html").read_text(encoding="utf-8")
    assert "The race that chose the model" in report and "frozen_too" in report
    assert "How the weights were chosen" in report

    # started again with the same settings, the race trains nothing and returns the same table
    def no_training(*args, **kwargs):
        raise AssertionError("a finished race trained again")

    task_cls, dataset = api.read_dataset(separable_npz)
    monkey_fit, racing.fit = racing.fit, no_training
    try:
        config_obj = api.TrainConfig(task="classification", data=str(separable_npz), model="lenet5", minutes=0.15)
        again = racing.run_race(task_cls, dataset, api.run_info(dataset), run, racing.stored_base_plan(run),
                                config_obj, 0.15, lambda line: None)
        assert again.winner.name == "learner" and again.table["table"] == race["table"]
        with pytest.raises(MedsightError, match="other settings"):
            racing.run_race(task_cls, dataset, api.run_info(dataset), run, racing.stored_base_plan(run),
                            config_obj, 0.3, lambda line: None)
    finally:
        racing.fit = monkey_fit


def test_no_race_without_two_candidates_or_with_a_model(separable_npz, tmp_path, one_thread):
    run = tmp_path / "fixed"
    summary = api.train(separable_npz, run, model="lenet5", epochs=1, minutes=0.05, race=True)
    assert summary["epochs"] == 1
    assert "race" not in json.loads((run / "plan.json").read_text(encoding="utf-8")) and not (run / "race").exists()


def test_a_plan_candidate_without_a_model_names_plan_json(separable_npz, tmp_path):
    run = tmp_path / "bad"
    base = api.plan(separable_npz, run)
    base["race_candidates"] = [{"name": "x"}, {"name": "y", "model": "lenet5"}]
    (run / "plan.json").write_text(json.dumps(base))
    with pytest.raises(MedsightError, match="plan.json"):
        api.train(separable_npz, run, minutes=0.1, race=True)


def test_plan_minutes_without_race_is_refused(separable_npz, tmp_path):
    with pytest.raises(MedsightError, match="--race"):
        api.plan(separable_npz, tmp_path / "p", minutes=5)
