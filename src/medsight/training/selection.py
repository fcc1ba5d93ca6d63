"""Which epoch's weights a run keeps: the best validation score, or the best score smoothed over neighbours.

On a small validation split (BreastMNIST has 78 images) one epoch's score moves by a few points from noise
alone, so the single best epoch is partly a lottery won on the validation cases. The smoothed rules score each
validated epoch by the mean (or median) of the scores in a window centred on it, and keep the weights of the
epoch whose window is best: a stretch of good epochs beats one lucky spike. Near either end of the run the
window shrinks on both sides alike (the first and last epochs stand alone): a window cut on one side only would
lend the first epochs the scores of the better epochs after them, and a short run would keep its first weights.
The weights themselves are already an average over the last steps where the plan has ``ema_decay``.

plan.json may fix the rule: ``"selection": {"rule": "mean", "window": 5}`` (rules ``best``, ``mean``,
``median``; the window counts validated epochs and is odd). Without the entry a validation split of fewer than
SMALL_VALIDATION cases is smoothed with DEFAULT_RULE over DEFAULT_WINDOW epochs, a larger one keeps the best epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from medsight.errors import MedsightError

RULES = ("best", "mean", "median")
SMALL_VALIDATION = 200  # validation cases below which one epoch's score is too noisy to choose by alone
DEFAULT_RULE, DEFAULT_WINDOW = "mean", 5


@dataclass(frozen=True)
class SelectionRule:
    rule: str
    window: int
    reason: str

    @classmethod
    def from_plan(cls, plan: dict[str, Any], validation_cases: int) -> "SelectionRule":
        """The plan's "selection" entry, else the default for a validation split of that many cases."""
        entry = plan.get("selection")
        if entry is None:
            if 0 < validation_cases < SMALL_VALIDATION:
                return cls(DEFAULT_RULE, DEFAULT_WINDOW, f"{validation_cases} validation cases (< {SMALL_VALIDATION}): "
                                                         f"one epoch's score is noisy, so scores are smoothed")
            return cls("best", 1, f"{validation_cases} validation cases" if validation_cases else
                       "no validation cases: the epoch with the lowest training loss")
        if not isinstance(entry, dict) or entry.get("rule") not in RULES:
            raise MedsightError("plan.json", f"selection must be {{\"rule\": one of {', '.join(RULES)}, \"window\": odd "
                                             f"number}}, not {entry!r}")
        window = entry.get("window", 1 if entry["rule"] == "best" else DEFAULT_WINDOW)
        if not isinstance(window, int) or window < 1 or window % 2 == 0:
            raise MedsightError("plan.json", f"selection window must be an odd whole number of epochs, not {window!r}")
        return cls(entry["rule"], 1 if entry["rule"] == "best" else window, "set in plan.json")

    def record(self) -> dict[str, Any]:
        return {"rule": self.rule, "window": self.window, "reason": self.reason}


def smoothed_scores(scores: Sequence[float], rule: str, window: int) -> list[float]:
    """Each score replaced by the mean or median of the window centred on it (narrower near the ends, alike on
    both sides, so every window stays centred on its epoch)."""
    half = window // 2
    if rule == "best" or half == 0:
        return [float(s) for s in scores]
    reduce = np.mean if rule == "mean" else np.median
    last = len(scores) - 1
    return [float(reduce(scores[i - h:i + h + 1])) for i in range(len(scores)) for h in [min(half, i, last - i)]]


def choose_epoch(epochs: Sequence[int], scores: Sequence[float], rule: str, window: int) -> tuple[int, float]:
    """(epoch, smoothed score) of the best smoothed score; the earliest such epoch on a tie; (-1, -inf) if none."""
    smoothed = smoothed_scores(scores, rule, window)
    if not smoothed:
        return -1, -math.inf
    best = int(np.argmax(smoothed))  # argmax returns the first maximum
    return int(epochs[best]), smoothed[best]


class EpochSelector:
    """The rule applied epoch by epoch during training, keeping the weights it may still choose.

    An epoch's smoothed score is final once the half window after it is validated, so the weights of the last
    window // 2 validated epochs wait in memory; ``add`` returns the weights to save when a final score beats
    the best so far, ``finish`` settles the epochs at the end of the run with truncated windows.
    """

    def __init__(self, rule: SelectionRule):
        self.rule = rule
        self.epochs: list[int] = []
        self.scores: list[float] = []
        self.waiting: dict[int, dict[str, torch.Tensor]] = {}  # epoch -> weights whose score is not final yet
        self.settled = 0  # validated epochs whose smoothed score is final
        self.best_epoch, self.best_score = -1, -math.inf

    def add(self, epoch: int, score: float, weights: dict[str, torch.Tensor]) -> tuple[int, dict[str, torch.Tensor]] | None:
        """Record a validated epoch and its weights; (epoch, weights) to save when a settled epoch is the new best."""
        self.epochs.append(int(epoch))
        self.scores.append(float(score))
        half = self.rule.window // 2
        self.waiting[int(epoch)] = {k: v.detach().to("cpu", copy=True) for k, v in weights.items()} if half else weights
        return self._settle(len(self.epochs) - half)

    def finish(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """Settle the last epochs (their windows end with the run); (epoch, weights) when one is the new best."""
        return self._settle(len(self.epochs))

    def provisional(self) -> tuple[int, float]:
        """The epoch and smoothed score that would be kept if the run ended now."""
        return choose_epoch(self.epochs, self.scores, self.rule.rule, self.rule.window)

    def _settle(self, upto: int) -> tuple[int, dict[str, torch.Tensor]] | None:
        smoothed = smoothed_scores(self.scores, self.rule.rule, self.rule.window)
        chosen = None
        for i in range(self.settled, max(self.settled, upto)):
            if smoothed[i] > self.best_score:
                self.best_epoch, self.best_score = self.epochs[i], smoothed[i]
                chosen = self.epochs[i]
        self.settled = max(self.settled, upto)
        result = (chosen, self.waiting[chosen]) if chosen is not None else None
        for epoch in [e for e in self.waiting if e in self.epochs[:self.settled]]:
            del self.waiting[epoch]
        return result

    def record(self) -> dict[str, Any]:
        """What metrics.json and the report say about the choice."""
        scores = dict(zip(self.epochs, self.scores))
        return {**self.rule.record(), "chosen_epoch": self.best_epoch, "smoothed_score": self.best_score,
                "score_at_chosen_epoch": scores.get(self.best_epoch), "validated_epochs": len(self.epochs)}

    def state_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "scores": self.scores, "settled": self.settled, "best_epoch": self.best_epoch,
                "best_score": self.best_score, "waiting": {str(e): w for e, w in self.waiting.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epochs, self.scores = list(state["epochs"]), list(state["scores"])
        self.settled, self.best_epoch, self.best_score = state["settled"], state["best_epoch"], state["best_score"]
        self.waiting = {int(e): w for e, w in state["waiting"].items()}
