"""A race inside the --minutes budget: the task's candidate configurations train on the data for equal slices,
successive halving drops the worse half at each rung, and the winner trains on for the rest of the budget.

Every candidate trains in its own run folder, RUN/race/<name>/, with the learning-rate schedule planned for the
budget the winner will have, and stops at the first step past its slice, mid-epoch (validated and
checkpointed), so candidates are compared after equal time rather than equal epochs. The winner's run resumes
from its last slice: the race costs the losers' slices and one shortened epoch a rung, never a restart.
The rungs split RACE_SHARE of the budget evenly: with 4 candidates and 20 minutes, rung 1 gives each 1 minute,
rung 2 gives the best 2 another 2 minutes each, and the winner, 3 minutes in, trains on to minute 15.

Each slice's result is written to RUN/race/race.json as soon as it ends, so a killed race started again with the
same settings skips what is done. The scores are the validation score by which the run chooses its weights
(medsight.training.selection), so a candidate that wins the race is judged as it will be kept.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from medsight.config import TrainConfig
from medsight.errors import MedsightError
from medsight.jsonio import load_json, save_json
from medsight.models import get_entry
from medsight.run import RunFolder
from medsight.training.loop import fit

RACE_SHARE = 0.4  # of the budget spent racing; the winner trains on for the rest
STATE_FILE = "race.json"
BASE_PLAN_FILE = "base_plan.json"


@dataclass(frozen=True)
class Candidate:
    """One configuration in the race: a registry model, its learning rate and the plan entries it changes."""

    name: str
    model: str
    learning_rate: float
    plan: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: dict[str, Any], task: str) -> "Candidate":
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or "model" not in entry:
            raise MedsightError("plan.json", f"a race candidate needs a name and a model, not {entry!r}")
        if not entry["name"].replace("_", "").replace("-", "").replace(".", "").isalnum():
            raise MedsightError("plan.json", f"race candidate name {entry['name']!r} may hold letters, digits, - _ . only")
        lr = entry.get("learning_rate")
        return cls(entry["name"], entry["model"],
                   float(get_entry(entry["model"], task).default_lr if lr is None else lr), dict(entry.get("plan") or {}))

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "learning_rate": self.learning_rate, "plan": self.plan}

    def describe(self) -> str:
        changes = ", ".join(f"{k} {v}" for k, v in self.plan.items())
        return f"{self.model}, lr {self.learning_rate:g}" + (f", {changes}" if changes else "")


@dataclass(frozen=True)
class Rung:
    """One round of the race: how many candidates run, how many go on, their training seconds at its end."""

    index: int
    candidates: int
    keep: int
    seconds: float  # cumulative training seconds of each candidate at the end of the rung


def halving_rungs(candidates: int, race_seconds: float) -> list[Rung]:
    """Successive halving: each rung keeps the better half (at least one) and gets an equal share of the race."""
    counts = [candidates]
    while counts[-1] > 1:
        counts.append(max(1, counts[-1] // 2))
    per_rung = race_seconds / max(1, len(counts) - 1)
    rungs, cumulative = [], 0.0
    for index, (running, keep) in enumerate(zip(counts, counts[1:])):
        cumulative += per_rung / running
        rungs.append(Rung(index + 1, running, keep, cumulative))
    return rungs


def winner_seconds(budget_seconds: float, rungs: Sequence[Rung]) -> float:
    """The training seconds the winner gets in all: the budget less what the losers are planned to spend."""
    return budget_seconds - sum((r.candidates - r.keep) * r.seconds for r in rungs)


def race_candidates(task_cls, plan: dict[str, Any]) -> list[Candidate]:
    """The plan's own "race_candidates" list when a user wrote one, else the task's."""
    entries = plan.get("race_candidates")
    if entries is None:  # the task's list names the plan's own model again where it is one of its usual rivals
        offered = task_cls.race_candidates(plan)
        entries = [e for i, e in enumerate(offered) if e["name"] not in {o["name"] for o in offered[:i]}]
    candidates = [Candidate.from_entry(e, task_cls.name) for e in entries]
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise MedsightError("plan.json", f"race candidate names must differ: {names}")
    return candidates


def candidate_plan(base_plan: dict[str, Any], candidate: Candidate) -> dict[str, Any]:
    """The plan a candidate trains with: the base plan, its model and its changes, without race entries."""
    plan = {k: v for k, v in base_plan.items() if k not in ("race", "race_candidates")}
    return {**plan, **candidate.plan, "model": candidate.model, "learning_rate": candidate.learning_rate}


@dataclass
class RaceOutcome:
    winner: Candidate
    table: dict[str, Any]  # what plan.json keeps under "race"
    final_seconds: float  # the winner's training budget in all, given what the losers really spent


def run_race(task_cls, dataset, info: dict[str, Any], out: Path, base_plan: dict[str, Any], config: TrainConfig,
             minutes: float, echo: Callable[[str], None]) -> RaceOutcome:
    """Race the task's candidates on dataset within minutes (out/race/); the winner and the table."""
    candidates = race_candidates(task_cls, base_plan)
    if len(candidates) < 2:
        raise MedsightError(out / "plan.json", f"a race needs at least two candidates, the plan offers {len(candidates)}")
    budget = minutes * 60.0
    rungs = halving_rungs(len(candidates), RACE_SHARE * budget)
    planned_winner = winner_seconds(budget, rungs)
    folder = out / "race"
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"minutes": minutes, "race_share": RACE_SHARE, "seed": config.seed, "fold": config.fold,
                "candidates": [c.record() for c in candidates]}
    state = _load_state(folder / STATE_FILE, settings)
    save_json(folder / BASE_PLAN_FILE, base_plan)
    echo(f"race: {len(candidates)} candidates, {len(rungs)} rung(s) in {RACE_SHARE:.0%} of {minutes:g} min; "
         f"the winner trains {planned_winner / 60:.1f} min in all")
    running = list(candidates)
    for rung in rungs:
        for candidate in running:
            result = state["results"].setdefault(candidate.name, {"rungs": []})
            if len(result["rungs"]) >= rung.index or result.get("failed"):
                continue  # done before this race was interrupted
            result["rungs"].append(_train_slice(task_cls, dataset, info, folder, base_plan, candidate, config,
                                                planned_winner, rung, echo, result))
            save_json(folder / STATE_FILE, state)
        ranked = sorted(running, key=lambda c: -_score(state["results"][c.name], rung.index))  # stable: plan order on ties
        running = ranked[:rung.keep]
        shown = ", ".join(f"{c.name} {_score(state['results'][c.name], rung.index):.4f}" for c in ranked)
        echo(f"race rung {rung.index}: {shown}; kept {', '.join(c.name for c in running)}")
    winner = running[0]
    spent_by_losers = sum(r["rungs"][-1]["seconds"] for name, r in state["results"].items()
                          if name != winner.name and r["rungs"])
    table = race_table(candidates, state["results"], rungs, winner, minutes, settings)
    return RaceOutcome(winner, table, max(budget - spent_by_losers, state["results"][winner.name]["rungs"][-1]["seconds"]))


def _load_state(path: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if not path.is_file():
        return {"settings": settings, "results": {}}
    state = load_json(path)
    if state.get("settings") != _as_json(settings):
        raise MedsightError(path, "holds a race with other settings (budget, seed, fold or candidates); "
                                  "delete its race folder or use another --out")
    return state


def _as_json(value: Any) -> Any:
    """value as it reads back from JSON (tuples become lists), to compare with a saved file."""
    import json

    return json.loads(json.dumps(value))


def _score(result: dict[str, Any], rung: int) -> float:
    entries = result["rungs"]
    if result.get("failed") or len(entries) < rung or entries[rung - 1]["score"] is None:
        return float("-inf")
    return float(entries[rung - 1]["score"])


def _train_slice(task_cls, dataset, info, folder: Path, base_plan, candidate: Candidate, config: TrainConfig,
                 planned_winner: float, rung: Rung, echo, result: dict[str, Any]) -> dict[str, Any]:
    """Train candidate up to rung.seconds of training in folder/<name>/ (continuing its last slice)."""
    sub = RunFolder(folder / candidate.name)
    plan = candidate_plan(base_plan, candidate)
    run_config = config.replace(model=candidate.model, learning_rate=candidate.learning_rate,
                                minutes=planned_winner / 60.0, epochs=None)
    resume = sub.checkpoint_path.is_file()
    if not resume:
        if sub.path.exists():
            shutil.rmtree(sub.path)  # killed before its first checkpoint: start the candidate over
        sub.path.mkdir(parents=True)
        sub.save_plan(plan)
        run_config.save(sub.config_path)
        sub.save_dataset_info(dataset.info())
    echo(f"race rung {rung.index}: {candidate.name} ({candidate.describe()}) to {rung.seconds:.0f} s of training")
    cpu_before = time.process_time()
    try:
        summary = fit(task_cls(plan, info), dataset, sub, run_config, resume=resume,
                      echo=lambda line: echo(f"  {candidate.name}: {line}"), stop_after=rung.seconds)
    except (MedsightError, RuntimeError) as exc:  # a candidate that diverges or runs out of memory loses, the race goes on
        result["failed"] = str(exc).splitlines()[0]
        echo(f"race: {candidate.name} failed: {result['failed']}")
        summary = {"best_score": None, "best_epoch": -1, "epochs": 0, "seconds": 0.0}
    cpu = time.process_time() - cpu_before + (result["rungs"][-1]["cpu_seconds"] if result["rungs"] else 0.0)
    score = summary["best_score"]
    return {"rung": rung.index, "seconds": float(summary["seconds"]), "cpu_seconds": cpu, "epochs": summary["epochs"],
            "score": None if score is None or score == float("-inf") else float(score),
            "chosen_epoch": summary["best_epoch"]}


def race_table(candidates: Sequence[Candidate], results: dict[str, Any], rungs: Sequence[Rung], winner: Candidate,
               minutes: float, settings: dict[str, Any]) -> dict[str, Any]:
    """plan.json's "race": the settings, the rungs and one row per candidate."""
    rows = []
    for candidate in candidates:
        result = results.get(candidate.name, {"rungs": []})
        entries = result["rungs"]
        last = entries[-1] if entries else {}
        if candidate.name == winner.name:
            kept = "winner"
        elif result.get("failed"):
            kept = f"failed at rung {len(entries)}: {result['failed']}"
        else:
            kept = f"dropped after rung {len(entries)}"
        rows.append({"candidate": candidate.name, "model": candidate.model, "learning_rate": candidate.learning_rate,
                     "plan_changes": candidate.plan, "cpu_seconds": last.get("cpu_seconds", 0.0),
                     "seconds": last.get("seconds", 0.0), "epochs": last.get("epochs", 0),
                     "scores": [e["score"] for e in entries], "kept": kept})
    return {"budget_minutes": minutes, "race_share": RACE_SHARE, "seed": settings["seed"], "fold": settings["fold"],
            "winner": winner.name,
            "rungs": [{"rung": r.index, "candidates": r.candidates, "keep": r.keep, "seconds_each": r.seconds}
                      for r in rungs],
            "score": "the validation score the run chooses its weights by, at the end of each rung",
            "table": rows}


def train_winner(task_cls, dataset, info: dict[str, Any], out: Path, base_plan: dict[str, Any], outcome: RaceOutcome,
                 config: TrainConfig, echo: Callable[[str], None], callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """The winner's run, moved from out/race/<winner>/ into out and trained on to the end of the budget."""
    run = RunFolder(out)
    source = RunFolder(out / "race" / outcome.winner.name)
    plan = {**candidate_plan(base_plan, outcome.winner), "race": outcome.table}
    final = config.replace(model=outcome.winner.model, learning_rate=outcome.winner.learning_rate,
                           minutes=outcome.final_seconds / 60.0, epochs=None)
    run.save_plan(plan)
    final.save(run.config_path)
    run.save_dataset_info(dataset.info())
    if not run.checkpoint_path.is_file():  # a rerun after a kill continues the run's own checkpoint instead
        for path in (source.checkpoint_path, source.weights_path, source.log_path):
            if path.is_file():
                shutil.copy2(path, run.path / path.name)
    echo(f"race: {outcome.winner.name} won; training on to {outcome.final_seconds / 60:.1f} min")
    return fit(task_cls(plan, info), dataset, run, final, resume=True, echo=echo, callbacks=callbacks)


def winner_plan(base_plan: dict[str, Any], outcome: RaceOutcome) -> dict[str, Any]:
    """plan.json after `plan --race`: the winner's configuration, and the race that chose it."""
    return {**candidate_plan(base_plan, outcome.winner), "race": outcome.table}


def stored_base_plan(out: Path) -> dict[str, Any] | None:
    """The plan a race in out started from (None: no race there)."""
    path = out / "race" / BASE_PLAN_FILE
    return load_json(path) if path.is_file() else None
