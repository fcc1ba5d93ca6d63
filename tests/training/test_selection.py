"""Epoch selection: the smoothed rules choose the epochs computed by hand from a given score sequence."""

from __future__ import annotations

import pytest
import torch

from medsight.errors import MedsightError
from medsight.training.selection import EpochSelector, SelectionRule, choose_epoch, smoothed_scores

EPOCHS = [1, 2, 3, 4, 5, 6, 7]
SCORES = [0.60, 0.90, 0.62, 0.74, 0.76, 0.78, 0.70]  # epoch 2 is a lucky spike, epochs 4-6 a good stretch


def test_best_rule_takes_the_spike():
    assert choose_epoch(EPOCHS, SCORES, "best", 1) == (2, 0.90)


def test_mean_over_three():
    # by hand: 0.60 alone, (0.60+0.90+0.62)/3, ..., (0.74+0.76+0.78)/3 = 0.76 at epoch 5, 0.70 alone
    expected = [0.60, 2.12 / 3, 2.26 / 3, 2.12 / 3, 0.76, 2.24 / 3, 0.70]
    assert smoothed_scores(SCORES, "mean", 3) == pytest.approx(expected)
    epoch, score = choose_epoch(EPOCHS, SCORES, "mean", 3)
    assert (epoch, score) == (5, pytest.approx(0.76))


def test_mean_over_five():
    # epoch 4's window holds epochs 2-6: (0.90+0.62+0.74+0.76+0.78)/5 = 0.76, the best of the seven
    epoch, score = choose_epoch(EPOCHS, SCORES, "mean", 5)
    assert (epoch, score) == (4, pytest.approx(0.76))


def test_median_over_five_takes_the_earliest_of_a_tie():
    # medians: 0.60 alone, 0.62, 0.74, 0.76, 0.74, 0.76, 0.70 alone: epochs 4 and 6 tie at 0.76, the earlier is kept
    assert smoothed_scores(SCORES, "median", 5) == pytest.approx([0.60, 0.62, 0.74, 0.76, 0.74, 0.76, 0.70])
    assert choose_epoch(EPOCHS, SCORES, "median", 5) == (4, 0.76)


def test_a_short_rising_run_keeps_its_last_epoch_not_its_first():
    # three epochs of a detector (validation mAP 0.45, 0.83, 0.88): a window cut on one side only gave all three
    # the same mean, 0.72, and kept epoch 1; centred windows score them 0.45, 0.72 and 0.88
    scores = [0.446, 0.831, 0.876]
    assert smoothed_scores(scores, "mean", 5) == pytest.approx([0.446, (0.446 + 0.831 + 0.876) / 3, 0.876])
    assert choose_epoch([1, 2, 3], scores, "mean", 5) == (3, pytest.approx(0.876))


@pytest.mark.parametrize("rule, window", [("best", 1), ("mean", 3), ("mean", 5), ("median", 5)])
def test_the_running_selector_saves_what_the_rule_chooses(rule, window):
    selector = EpochSelector(SelectionRule(rule, window, "test"))
    saved = []
    for epoch, score in zip(EPOCHS, SCORES):
        chosen = selector.add(epoch, score, {"w": torch.tensor([float(epoch)])})
        if chosen is not None:
            saved.append(chosen)
            assert chosen[0] <= epoch - window // 2  # decided only once the half window after it is validated
    chosen = selector.finish()
    if chosen is not None:
        saved.append(chosen)
    epoch, score = choose_epoch(EPOCHS, SCORES, rule, window)
    assert saved[-1][0] == epoch and float(saved[-1][1]["w"]) == epoch  # the weights saved last are that epoch's
    assert selector.record()["chosen_epoch"] == epoch
    assert selector.record()["smoothed_score"] == pytest.approx(score)
    assert len(selector.waiting) == 0


def test_the_selector_survives_a_resume_between_epochs():
    whole = EpochSelector(SelectionRule("mean", 5, "test"))
    first = EpochSelector(SelectionRule("mean", 5, "test"))
    for epoch, score in zip(EPOCHS[:4], SCORES[:4]):
        whole.add(epoch, score, {"w": torch.tensor([float(epoch)])})
        first.add(epoch, score, {"w": torch.tensor([float(epoch)])})
    resumed = EpochSelector(SelectionRule("mean", 5, "test"))
    resumed.load_state_dict(first.state_dict())
    saved = {}
    for selector in (whole, resumed):
        for epoch, score in zip(EPOCHS[4:], SCORES[4:]):
            chosen = selector.add(epoch, score, {"w": torch.tensor([float(epoch)])})
            saved[id(selector)] = chosen or saved.get(id(selector))
        saved[id(selector)] = selector.finish() or saved[id(selector)]
    assert saved[id(whole)][0] == saved[id(resumed)][0] == 4
    assert float(saved[id(resumed)][1]["w"]) == 4.0


def test_small_validation_splits_are_smoothed_by_default():
    assert SelectionRule.from_plan({}, 78).record()["rule"] == "mean"
    assert SelectionRule.from_plan({}, 78).window == 5
    assert SelectionRule.from_plan({}, 500).rule == "best"
    assert SelectionRule.from_plan({}, 0).rule == "best"
    assert SelectionRule.from_plan({"selection": {"rule": "median", "window": 3}}, 500).window == 3


@pytest.mark.parametrize("entry", [{"rule": "vote"}, {"rule": "mean", "window": 4}, "mean"])
def test_a_wrong_selection_entry_names_plan_json(entry):
    with pytest.raises(MedsightError, match="plan.json"):
        SelectionRule.from_plan({"selection": entry}, 78)
