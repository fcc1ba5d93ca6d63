"""Transfer benchmark on BreastMNIST: from scratch vs --init from PneumoniaMNIST vs --init from `medsight pretrain`.

    OMP_NUM_THREADS=1 python benchmarks/transfer/breastmnist.py --minutes 10 --seeds 0 1 2

Every arm gets the same total budget per seed (--minutes, wall clock on one thread, so about CPU minutes):
(a) `train` BreastMNIST for all of it; (b) `train` PneumoniaMNIST for --source-share of it, then `train
--init` BreastMNIST for the rest; (c) `pretrain` on BreastMNIST's training images for --source-share, then
`train --init` for the rest. The source minutes count. Each run goes through the command line a user types
(subprocesses); the test split is scored by `medsight evaluate`. Writes results.json and results.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
BREAST = SHARED / "medmnist" / "breastmnist.npz"
PNEUMONIA = SHARED / "medmnist_variants" / "pneumoniamnist_reduced_train" / "pneumoniamnist.npz"
HERE = Path(__file__).resolve().parent
ARMS = ("scratch", "pneumonia_init", "pretrain_init")


def run(cmd: list[str], log: Path) -> dict[str, float]:
    """Run a medsight command; its wall seconds and CPU seconds (user + system, all threads)."""
    wall, cpu = classification_benchmark().run(cmd, log)
    return {"wall_s": wall, "cpu_s": cpu}


def classification_benchmark():
    """benchmarks/classification/medmnist.py, whose timed subprocess runner this benchmark shares."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("medmnist_benchmark", HERE.parent / "classification" / "medmnist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def medsight(*args: str) -> list[str]:
    return [sys.executable, "-m", "medsight", *args]


def arm_steps(arm: str, runs: Path, seed: int, minutes: float, share: float, model: str,
              init_options: list[str]) -> list[tuple[str, list[str]]]:
    """(step name, command) for one arm and seed; the last step trains the BreastMNIST run that is scored."""
    target = runs / f"{arm}_seed{seed}"
    common = ["--model", model, "--seed", str(seed)]
    if arm == "scratch":
        return [("train", medsight("train", str(BREAST), "--out", str(target), "--minutes", f"{minutes:g}", *common))]
    source = runs / f"{arm}_seed{seed}_source"
    first = minutes * share
    if arm == "pneumonia_init":
        prepare = medsight("train", str(PNEUMONIA), "--out", str(source), "--minutes", f"{first:g}", *common)
    else:
        prepare = medsight("pretrain", str(BREAST), "--out", str(source), "--minutes", f"{first:g}", *common)
    finetune = medsight("train", str(BREAST), "--out", str(target), "--minutes", f"{minutes - first:g}", *common,
                        "--init", str(source), *init_options)
    return [("source", prepare), ("train", finetune)]


def summarise(rows: list[dict]) -> dict[str, dict[str, float]]:
    out = {}
    for arm in ARMS:
        mine = [r for r in rows if r["arm"] == arm]
        if not mine:
            continue
        out[arm] = {"runs": len(mine)}
        for key in ("auc", "accuracy", "cpu_s", "wall_s"):
            values = np.array([r[key] for r in mine], dtype=float)
            out[arm][f"{key}_mean"] = float(values.mean())
            out[arm][f"{key}_sd"] = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return out


def write_markdown(path: Path, results: dict) -> None:
    m = results["machine"]
    lines = ["# Transfer learning on BreastMNIST", "", f"Command: `{results['command']}`", "",
             f"Machine: {m['cores']} cores, OMP_NUM_THREADS={m['torch_threads']}, {m['platform']}. "
             f"Budget per arm and seed: {results['minutes_per_arm']} min (source share {results['source_share']}).", "",
             "| arm | runs | test AUC | test ACC | CPU s (all steps) | wall s |", "| --- | --- | --- | --- | --- | --- |"]
    for arm, s in results["summary"].items():
        lines.append(f"| {arm} | {s['runs']} | {s['auc_mean']:.3f} ± {s['auc_sd']:.3f} | "
                     f"{s['accuracy_mean']:.3f} ± {s['accuracy_sd']:.3f} | {s['cpu_s_mean']:.0f} | {s['wall_s_mean']:.0f} |")
    lines += ["", "Per run:", "", "| arm | seed | AUC | ACC | CPU s | wall s |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results["runs"]:
        lines.append(f"| {r['arm']} | {r['seed']} | {r['auc']:.3f} | {r['accuracy']:.3f} | {r['cpu_s']:.0f} | {r['wall_s']:.0f} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total budget per arm and seed")
    parser.add_argument("--source-share", type=float, default=0.5, help="share of it for the source run / pre-training")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--model", default="resnet18_half")
    parser.add_argument("--arms", nargs="+", choices=ARMS, default=list(ARMS))
    parser.add_argument("--init-options", default="", help="more options for the --init runs, quoted, e.g. '--freeze encoder'")
    parser.add_argument("--runs", default="/tmp/medsight-transfer-bench")
    parser.add_argument("--out", default=str(HERE))
    args = parser.parse_args()
    for needed in (BREAST, PNEUMONIA):
        if not needed.is_file():
            sys.exit(f"{needed} is not present on this machine")

    runs, out = Path(args.runs), Path(args.out)
    runs.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    log = runs / "commands.log"
    rows = []
    for seed in args.seeds:
        for arm in args.arms:
            steps = arm_steps(arm, runs, seed, args.minutes, args.source_share, args.model, shlex.split(args.init_options))
            timings = {}
            for name, cmd in steps:
                timings[name] = run(cmd, log)
            target = Path(steps[-1][1][steps[-1][1].index("--out") + 1])
            timings["evaluate"] = run(medsight("evaluate", str(target), "--split", "test"), log)
            metrics = json.loads((target / "eval" / "test" / "metrics.json").read_text(encoding="utf-8"))["metrics"]
            trained = [t for k, t in timings.items() if k != "evaluate"]
            rows.append({"arm": arm, "seed": seed, "auc": metrics["auc"], "accuracy": metrics["accuracy"],
                         "cpu_s": sum(t["cpu_s"] for t in trained), "wall_s": sum(t["wall_s"] for t in trained),
                         "steps": timings, "commands": [shlex.join(c) for _, c in steps], "run": str(target)})
            print(f"{arm} seed {seed}: AUC {metrics['auc']:.3f} ACC {metrics['accuracy']:.3f} "
                  f"({rows[-1]['cpu_s']:.0f} CPU s)", flush=True)
    results = {
        "command": "OMP_NUM_THREADS=" + os.environ.get("OMP_NUM_THREADS", "") + " python " + shlex.join(sys.argv),
        "machine": {"cores": os.cpu_count(), "torch_threads": os.environ.get("OMP_NUM_THREADS", "default"),
                    "platform": platform.platform(), "processor": platform.processor()},
        "minutes_per_arm": args.minutes, "source_share": args.source_share, "model": args.model,
        "data": {"target": str(BREAST), "pneumonia_source": str(PNEUMONIA)},
        "runs": rows, "summary": summarise(rows),
    }
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(out / "results.md", results)
    print(f"wrote {out / 'results.json'} and {out / 'results.md'}")


if __name__ == "__main__":
    main()
