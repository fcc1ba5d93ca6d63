"""What every evaluation says about how its weights were chosen: the epoch-selection rule and, when the plan
raced its candidates, the race's table (metrics.json "selection" and "race", and a report section each)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medsight.jsonio import load_json, save_json
from medsight.report.html import Section, append_sections


def selection_section(selection: dict[str, Any]) -> Section:
    rule, window = selection.get("rule"), selection.get("window")
    how = ("the weights kept are those of the epoch with the best validation score"
           if rule == "best" else
           f"each validated epoch is scored by the {rule} of the validation scores of the {window} validated epochs "
           f"centred on it (fewer at the ends of the run), and the weights of the best-scored epoch are kept")
    table = [{"rule": rule, "window (validated epochs)": window, "chosen epoch": selection.get("chosen_epoch"),
              "smoothed score": selection.get("smoothed_score"),
              "score of that epoch": selection.get("score_at_chosen_epoch"),
              "validated epochs": selection.get("validated_epochs"), "why this rule": selection.get("reason")}]
    return Section("How the weights were chosen", html=f"<p>On the validation split, {how}.</p>", table=table)


def race_section(race: dict[str, Any]) -> Section:
    rungs = race.get("rungs", [])
    rows = []
    for row in race.get("table", []):
        entry = {"candidate": row["candidate"], "model": row["model"], "learning rate": row["learning_rate"],
                 "plan changes": ", ".join(f"{k} {v}" for k, v in (row.get("plan_changes") or {}).items()) or "-",
                 "CPU seconds": row.get("cpu_seconds"), "epochs": row.get("epochs")}
        for rung, score in zip(rungs, row.get("scores", []) + [None] * len(rungs)):
            entry[f"score, rung {rung['rung']}"] = score
        entry["kept"] = row.get("kept")
        rows.append(entry)
    how = (f"Before training, {len(rows)} candidate configurations trained on these data for equal slices of "
           f"{race.get('race_share', 0):.0%} of the {race.get('budget_minutes')}-minute budget; after each rung the "
           f"better half by validation score went on (successive halving), and the winner, "
           f"{race.get('winner')}, trained on for the rest of the budget. CPU seconds are the whole race's for "
           f"that candidate, validation included; the winner's go on into its final training.")
    return Section("The race that chose the model", html=f"<p>{how}</p>", table=rows,
                   how_to_read="Scores are validation scores (higher is better) at the end of each rung; "
                               "n/a: the candidate had been dropped.")


def add_training_record(run, out_dir: str | Path) -> dict[str, Any]:
    """Write the selection rule and the race into out_dir's metrics.json and report.html; what was added."""
    out_dir = Path(out_dir)
    state = load_json(run.state_path) if run.state_path.is_file() else {}
    added: dict[str, Any] = {}
    selection = state.get("training", {}).get("selection")
    if selection:
        added["selection"] = selection
    race = run.load_plan().get("race") if run.plan_path.is_file() else None
    if isinstance(race, dict):
        added["race"] = race
    metrics_path = out_dir / "metrics.json"
    if not added or not metrics_path.is_file():
        return {}
    save_json(metrics_path, {**load_json(metrics_path), **added})
    sections = ([selection_section(selection)] if selection else []) + ([race_section(race)] if "race" in added else [])
    if (out_dir / "report.html").is_file():
        append_sections(out_dir / "report.html", sections)
    return added
