"""MedMNIST benchmark: train with `medsight train`, evaluate on the test split, record everything.

    python benchmarks/classification/medmnist.py DATA.npz --models resnet18 --seeds 0 1 2 --minutes 10 \
        --out benchmarks/classification/results/breastmnist.json

Each run goes through the command line a user types (subprocesses), so the timings include everything.
Test AUC and ACC are computed twice: by `medsight evaluate` (metrics.json) and here with scikit-learn from
the saved predictions, as a cross-check.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run(cmd: list[str], log: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system, all threads)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with open(log, "a") as handle:
        handle.write("$ " + shlex.join(cmd) + "\n")
        handle.flush()
        subprocess.run(cmd, stdout=handle, stderr=subprocess.STDOUT, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - started, cpu


def sklearn_check(eval_dir: Path) -> dict[str, float]:
    """AUC and accuracy recomputed from predictions.csv with scikit-learn."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, roc_auc_score

    with open(eval_dir / "predictions" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    prob_columns = [c for c in rows[0] if c.startswith("prob_")]
    names = [c[5:] for c in prob_columns]
    y_true = np.array([int(r["true"]) for r in rows])
    y_pred = np.array([int(r["predicted"]) for r in rows])
    probs = np.array([[float(r[c]) for c in prob_columns] for r in rows])
    auc = roc_auc_score(y_true, probs[:, 1]) if len(names) == 2 else roc_auc_score(y_true, probs, multi_class="ovr")
    out = {"auc": float(auc), "accuracy": float(accuracy_score(y_true, y_pred))}
    if len(names) > 2:  # graded sets: quadratic kappa of the decisions and of argmax
        out["kappa_quadratic"] = float(cohen_kappa_score(y_true, y_pred, weights="quadratic"))
        argmax = probs.argmax(axis=1)
        out["accuracy_argmax"] = float(accuracy_score(y_true, argmax))
        out["kappa_quadratic_argmax"] = float(cohen_kappa_score(y_true, argmax, weights="quadratic"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--models", nargs="+", default=[None])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--minutes", type=float, default=None, help="wall-clock budget per run")
    parser.add_argument("--epochs", type=int, default=None, help="fixed epochs per run (CPU time is recorded)")
    parser.add_argument("--balance", nargs="+", default=["none"])
    parser.add_argument("--extra", default="", help="more `medsight train` options, quoted")
    parser.add_argument("--runs", default="/tmp/medsight-bench")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {"runs": []}
    results.update({
        "command": "python " + shlex.join(sys.argv),
        "machine": {"cores": os.cpu_count(), "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                    "platform": platform.platform(), "processor": platform.processor()},
    })
    data_name = Path(args.data).stem
    for model in args.models:
        for balance in args.balance:
            for seed in args.seeds:
                tag = f"{data_name}_{model or 'default'}_{balance}_s{seed}"
                run_dir = Path(args.runs) / tag
                log = Path(args.runs) / f"{tag}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                cmd = [sys.executable, "-m", "medsight", "train", args.data, "--out", str(run_dir), "--seed", str(seed),
                       "--balance", balance, *shlex.split(args.extra)]
                if args.minutes:
                    cmd += ["--minutes", str(args.minutes)]
                if args.epochs:
                    cmd += ["--epochs", str(args.epochs)]
                if model:
                    cmd += ["--model", model]
                train_seconds, train_cpu = run(cmd, log) if not (run_dir / "model.safetensors").exists() else (None, None)
                eval_seconds, _ = run([sys.executable, "-m", "medsight", "evaluate", str(run_dir), "--split", "test"], log)
                eval_dir = run_dir / "eval" / "test"
                metrics = json.loads((eval_dir / "metrics.json").read_text(encoding="utf-8"))
                state = json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
                record = {
                    "data": data_name, "model": json.loads((run_dir / "config.json").read_text(encoding="utf-8"))["model"],
                    "balance": balance, "seed": seed, "minutes_budget": args.minutes, "epochs_budget": args.epochs,
                    "train_wall_seconds": train_seconds, "train_cpu_seconds": train_cpu, "eval_wall_seconds": eval_seconds,
                    "epochs_run": state.get("training", {}).get("epochs"),
                    "best_epoch": state.get("training", {}).get("best_epoch"),
                    "test": {k: metrics["metrics"].get(k) for k in
                             ("auc", "accuracy", "balanced_accuracy", "f1", "kappa", "kappa_quadratic")},
                    "test_argmax": {k: metrics.get("metrics_argmax", {}).get(k)
                                    for k in ("accuracy", "balanced_accuracy", "kappa_quadratic")},
                    "recall_per_class": {name: v.get("recall") for name, v in metrics.get("per_class", {}).items()},
                    "ci95": metrics.get("ci95"), "sklearn_check": sklearn_check(eval_dir),
                    "operating_point": metrics.get("operating_point"), "definitions": metrics.get("definitions"),
                }
                results["runs"] = [r for r in results["runs"] if (r["data"], r["model"], r["balance"], r["seed"])
                                   != (record["data"], record["model"], balance, seed)] + [record]
                out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
                print(json.dumps(record["test"]), record["sklearn_check"], flush=True)


if __name__ == "__main__":
    main()
