"""Print a run's race table (plan.json "race") and its evaluation figures as Markdown, for results.md.

Usage: python benchmarks/race/table.py RUN [SPLIT]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(run: Path, split: str) -> None:
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    race = plan["race"]
    rungs = race["rungs"]
    print(f"budget {race['budget_minutes']} min, race share {race['race_share']:.0%}, rungs "
          + ", ".join(f"{r['candidates']}->{r['keep']} at {r['seconds_each']:.0f} s" for r in rungs)
          + f"; winner **{race['winner']}**\n")
    print("| candidate | config | CPU s | training s | epochs | " + " | ".join(f"score rung {r['rung']}" for r in rungs)
          + " | kept |")
    print("|" + " --- |" * (6 + len(rungs)))
    for row in race["table"]:
        changes = ", ".join(f"{k} {v}" for k, v in row["plan_changes"].items())
        config = f"{row['model']}, lr {row['learning_rate']:g}" + (f", {changes}" if changes else "")
        scores = [f"{s:.4f}" if s is not None else "n/a" for s in row["scores"]]
        scores += ["-"] * (len(rungs) - len(scores))
        print(f"| {row['candidate']} | {config} | {row['cpu_seconds']:.0f} | {row['seconds']:.0f} | {row['epochs']} | "
              + " | ".join(scores) + f" | {row['kept']} |")
    state = json.loads((run / "state.json").read_text(encoding="utf-8"))["training"]
    print(f"\nfinal training: {state['epochs']} epochs, {state['seconds']:.0f} s of training; selection "
          f"{json.dumps({k: state['selection'][k] for k in ('rule', 'window', 'chosen_epoch', 'smoothed_score')})}")
    metrics_path = run / "eval" / split / "metrics.json"
    if metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))["metrics"]
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        print(f"{split}: " + ", ".join(f"{k} {v:.4f}" for k, v in list(shown.items())[:12]))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "test")
