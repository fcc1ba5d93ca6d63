"""Training throughput (samples/s) with 1 and 2 DDP processes (gloo, CPU) for medsight's default models.

python benchmarks/scaling/bench_scaling.py [--out DIR] [--tasks classification segmentation]
Throughput counts training samples (classification: images; segmentation: patches) over the epochs between
the first (warm-up) and the last (segmentation validates only there); each epoch's seconds come from
RUN/log.csv. Each configuration is measured --repeats times, interleaved, because the cores may be shared.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {  # model, epochs, batch size, plan edits
    "classification": ("resnet18", 4, 64, {}),
    # a short epoch, validated only at the end (validation runs on rank 0 alone, so it does not scale)
    "segmentation": ("dynunet_tiny", 4, 2, {"iterations_per_epoch": 12, "validate_every": 100, "validation_cases": 1}),
}


def classification_data(folder: Path) -> Path:
    from medsight.synthetic.classification import make_classification_npz

    return make_classification_npz(folder / "lesions.npz", size=28, n_train=256, n_val=64, n_test=16, seed=0)


def segmentation_data(folder: Path) -> Path | None:
    try:
        from medsight.synthetic.segmentation import make_segmentation_dataset
    except ImportError:
        return None
    return make_segmentation_dataset(folder / "seg", spatial_dims=3, num_cases=12, size=32)


def samples_per_epoch(run: Path, batch: int) -> int:
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    if "iterations_per_epoch" in plan:
        return int(plan["iterations_per_epoch"]) * batch
    info = json.loads((run / "dataset.json").read_text(encoding="utf-8"))
    return len(info["splits"]["train"]) // batch * batch  # the ragged last batch is dropped


def epoch_seconds(run: Path) -> list[float]:
    with open(run / "log.csv", newline="") as handle:
        return [float(row["seconds"]) for row in csv.DictReader(handle)]


def measure(data: Path, run: Path, task: str, nproc: int, threads: int) -> dict:
    model, epochs, batch, plan_edits = SETTINGS[task]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if plan_edits:
        subprocess.run([sys.executable, "-m", "medsight", "plan", str(data), "--out", str(run)], check=True, env=env,
                       capture_output=True)
        plan = {**json.loads((run / "plan.json").read_text(encoding="utf-8")), **plan_edits}
        if "inference" in plan:
            plan["inference"]["mirror_axes"] = []  # the one final validation without test-time mirroring
        (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")
    command = [sys.executable, "-m", "medsight", "train", str(data), "--out", str(run), "--epochs", str(epochs),
               "--model", model, "--batch-size", str(batch), "--nproc", str(nproc)]
    started = time.perf_counter()
    subprocess.run(command, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    seconds = epoch_seconds(run)
    steady = seconds[1:-1]
    return {"processes": nproc, "threads_per_process": threads, "epochs": len(seconds), "wall_s": round(wall, 1),
            "epoch_s": [round(s, 2) for s in seconds],
            "samples_per_s": round(samples_per_epoch(run, batch) * len(steady) / sum(steady), 2),
            "command": f"OMP_NUM_THREADS={threads} medsight " + " ".join(command[3:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("/tmp/medsight-bench-scaling"))
    parser.add_argument("--tasks", nargs="+", default=list(SETTINGS))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=["1x1", "1x2", "2x1"],
                        help="PROCESSESxTHREADS each; 1x2 is one process using both cores")
    args = parser.parse_args()
    results = {"cpu_count": os.cpu_count(), "platform": platform.platform(), "load_before": os.getloadavg(), "runs": []}
    for repeat in range(args.repeats):
        for task in args.tasks:
            data = (classification_data if task == "classification" else segmentation_data)(args.out / "data")
            if data is None:
                print(f"{task}: no synthetic data builder in this version, skipped", flush=True)
                continue
            for nproc, threads in (map(int, c.split("x")) for c in args.configs):
                run = args.out / f"{task}-{nproc}x{threads}-{repeat}"
                shutil.rmtree(run, ignore_errors=True)
                result = {"task": task, "model": SETTINGS[task][0], "repeat": repeat,
                          **measure(data, run, task, nproc, threads), "load_after": os.getloadavg()}
                results["runs"].append(result)
                print(json.dumps(result), flush=True)
    results["load_after"] = os.getloadavg()
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
