"""Helpers for the fault tests and the fault soak: run medsight in a real process, check a run folder."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

RUNNER = Path(__file__).with_name("fault_runner.py")


def medsight_env() -> dict[str, str]:
    """One thread per process: the results do not depend on the machine's load, and it shares the cores."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def runner_command(args: Sequence[Any], kill: str = "none") -> list[str]:
    return [sys.executable, str(RUNNER), kill, "--", *map(str, args)]


def run_medsight(args: Sequence[Any], kill: str = "none", timeout: float = 300) -> subprocess.CompletedProcess:
    """`medsight ARGS` in a fresh process, SIGKILLed at the point `kill` names (see fault_runner.py)."""
    return subprocess.run(runner_command(args, kill), capture_output=True, encoding="utf-8", errors="replace", timeout=timeout, env=medsight_env())


def start_medsight(args: Sequence[Any]) -> subprocess.Popen:
    """`medsight ARGS` in the background (its output discarded)."""
    return subprocess.Popen(runner_command(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=medsight_env())


def read_log(run: Path) -> list[dict[str, str]]:
    """log.csv rows without the wall-clock column (the only one allowed to differ between runs)."""
    with open(run / "log.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def assert_run_readable(run: Path) -> None:
    """Every file a run folder holds loads: a kill at any moment leaves old or new files, never torn ones."""
    from medsight.run import load_weights
    from medsight.training.checkpoint import load_checkpoint

    for name in ("config.json", "plan.json", "dataset.json", "state.json"):
        if (run / name).exists():
            json.loads((run / name).read_text(encoding="utf-8"))
    if (run / "log.csv").exists():
        rows = read_log(run)
        assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    if (run / "checkpoint.pt").exists():
        checkpoint = load_checkpoint(run / "checkpoint.pt")
        assert len(checkpoint["progress"]["log"]) == checkpoint["progress"]["epoch"]
    if (run / "model.safetensors").exists():
        assert load_weights(run / "model.safetensors")


def final_state(run: Path) -> dict[str, Any]:
    """What must be identical between a killed-and-resumed run and one never killed."""
    from medsight.training.checkpoint import load_checkpoint

    state = json.loads((run / "state.json").read_text(encoding="utf-8"))
    state["training"].pop("seconds")
    last = load_checkpoint(run / "checkpoint.pt")["model"]
    return {"best_weights": (run / "model.safetensors").read_bytes(), "log": read_log(run), "state": state,
            "last_weights": {name: tensor.numpy().tobytes() for name, tensor in last.items()},
            "files": sorted(p.name for p in run.iterdir())}
