"""Fault soak: real training runs SIGKILLed at random moments and resumed, N cycles, against one never killed.

python benchmarks/faults/soak.py [--task classification] [--runs 3] [--kills 6] [--out DIR]
--task segmentation2d|segmentation3d|detection2d|detection3d trains on small synthetic data with the
preprocessed cache and two DataLoader workers (--workers 2) in play. Each run starts `medsight train`, kills it after a random delay (seeded), checks that every file in the run
folder still loads, resumes with `medsight train --out RUN --resume`, and repeats until a process finishes on
its own; the final weights (bytes), log (all columns but seconds) and state must equal the never-killed run's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "training"))
from faults import assert_run_readable, final_state, medsight_env  # noqa: E402


TASKS = ("classification", "segmentation2d", "segmentation3d", "detection2d", "detection3d")


def train_options(task: str, epochs: int) -> list[str]:
    if task == "classification":
        return ["--model", "lenet5", "--batch-size", "32", "--epochs", str(epochs)]
    model = ["--model", "dynunet_tiny"] if task.startswith("segmentation") else ["--model", "retinanet", "--batch-size", "2"]
    return [*model, "--workers", "2", "--epochs", str(epochs)]


def make_data(task: str, folder: Path) -> tuple[Path, dict]:
    """The data set and the plan.json changes that keep an epoch to seconds."""
    from medsight.synthetic.classification import make_classification_npz
    from medsight.synthetic.detection import make_blobs_2d, make_spheres_3d
    from medsight.synthetic.segmentation import make_segmentation_dataset

    if task == "classification":
        return make_classification_npz(folder / "lesions.npz", size=28, n_train=1024, n_val=128, n_test=16), {}
    if task.startswith("segmentation"):
        dims = int(task[-2])
        data = make_segmentation_dataset(folder / "shapes", spatial_dims=dims, num_cases=8, seed=0, size=32 if dims == 2 else 16)
        return data, {"iterations_per_epoch": 6, "batch_size": 2, "validation_cases": 2, "inference_tta": False}
    data = make_blobs_2d(folder / "blobs", seed=0, num_images=10, size=48) if task == "detection2d" else \
        make_spheres_3d(folder / "spheres", seed=0, num_cases=8, size=24)
    return data, {"iterations_per_epoch": 6}


def write_plan(data: Path, run: Path, changes: dict) -> None:
    if not changes:
        return
    from medsight import api

    plan = api.plan(data, run, device="cpu")
    changes = dict(changes)
    if changes.pop("inference_tta", True) is False:
        plan["inference"]["tta"] = False
    plan.update(changes)
    (run / "plan.json").write_text(json.dumps(plan), encoding="utf-8")


def medsight(args: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "medsight", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=medsight_env())


def digest(state: dict) -> str:
    text = json.dumps({"log": state["log"], "state": state["state"]}, sort_keys=True).encode()
    weights = state["best_weights"] + b"".join(state["last_weights"][k] for k in sorted(state["last_weights"]))
    return hashlib.sha256(text + weights).hexdigest()[:16]


def soak_run(data: Path, run: Path, options: list[str], reference_seconds: float, kills: int, rng: random.Random,
             window: tuple[float, float]) -> dict:
    killed_at, started = [], time.perf_counter()
    args = ["train", data, "--out", run, *options]
    while True:
        process = medsight(args)
        delay = rng.uniform(*window) * reference_seconds if len(killed_at) < kills else None
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at.append(round(delay, 2))
            assert_run_readable(run)
            args = ["train", data, "--out", run, "--resume", *options]  # what a user re-types after a crash
            continue
        stderr = process.stderr.read()
        if process.returncode != 0:
            raise SystemExit(f"{run}: exit code {process.returncode}: {stderr}")
        break
    return {"run": str(run), "kills": len(killed_at), "killed_after_s": killed_at,
            "wall_s": round(time.perf_counter() - started, 1), "digest": digest(final_state(run))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--kills", type=int, default=6, help="kills per run (fewer when a run finishes first)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/medsight-bench-faults"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window", type=float, nargs=2, default=(0.25, 1.0),
                        help="kill after this range of fractions of the never-killed run's wall time")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--task", choices=TASKS, default="classification")
    args = parser.parse_args()
    options = train_options(args.task, args.epochs)
    os.environ["HOME"] = str(args.out)  # the preprocessed cache of every process stays under --out
    data, plan_changes = make_data(args.task, args.out / "data")
    started = time.perf_counter()
    reference = args.out / "never_killed"
    write_plan(data, reference, plan_changes)
    done = subprocess.run([sys.executable, "-m", "medsight", "train", data, "--out", reference, *options],
                          capture_output=True, text=True, env=medsight_env())
    assert done.returncode == 0, done.stderr
    reference_seconds = time.perf_counter() - started
    expected = digest(final_state(reference))
    rng = random.Random(args.seed)
    results = {"command": " ".join(sys.argv), "task": args.task, "cpu_count": os.cpu_count(), "load_before": os.getloadavg(),
               "reference": {"wall_s": round(reference_seconds, 1), "digest": expected}, "runs": []}
    for number in range(args.runs):
        write_plan(data, args.out / f"soak{number}", plan_changes)
        result = soak_run(data, args.out / f"soak{number}", options, reference_seconds, args.kills, rng, tuple(args.window))
        result["identical_to_never_killed"] = result["digest"] == expected
        results["runs"].append(result)
        print(json.dumps(result), flush=True)
    results["load_after"] = os.getloadavg()
    results["all_identical"] = all(r["identical_to_never_killed"] for r in results["runs"])
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
