"""Peak memory of 3D detection in mm as the number of full-size CT scans grows (synthetic LUNA16 layout).

Writes N synthetic 512x512x300 scans (int16 .mhd/.raw, about 0.7x0.7x1.25 mm) to --root, then runs
`medsight plan`, a short `medsight train` (plan edited to a few iterations and one validation scan, so the
figure is about memory, not accuracy) and `medsight predict` on some scans, each as its own process whose
peak resident memory (ru_maxrss from wait4) is recorded. The scans and the cache stay under --root.

    python benchmarks/detection/ct_memory.py --root /work/bench/ct_memory --scans 10 --predict 1 --target-spacing 2.5 1.4 1.4 --overlap 0.25
    python benchmarks/detection/ct_memory.py --root /work/bench/ct_memory --scans 40 --predict 1 --target-spacing 2.5 1.4 1.4 --overlap 0.25

Delete --root afterwards (40 scans: 6.3 GB of scans and about 1 GB of cache at that spacing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

SHAPE = (300, 512, 512)
SPACING_XYZ = (0.7, 0.7, 1.25)  # mm, varied by up to 10% per scan


def measured(command: list[str], env: dict) -> dict:
    """Run a command; its wall time and peak resident memory (MB)."""
    started = time.time()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command)} failed:\n{output[-3000:]}")
    return {"command": " ".join(command), "wall_s": round(time.time() - started, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "tail": output.strip().splitlines()[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--scans", type=int, required=True)
    parser.add_argument("--predict", type=int, default=1, help="scans to predict in one `medsight predict`")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--target-spacing", type=float, nargs=3, metavar=("Z", "Y", "X"),
                        help="edit the plan's target spacing (mm, array order) before training, e.g. to fit the "
                             "sliding windows over whole scans into the CPU time there is")
    parser.add_argument("--overlap", type=float, help="edit the plan's window overlap before training")
    args = parser.parse_args()
    from medsight.synthetic.luna16 import make_luna16

    data = args.root / f"scans{args.scans}"
    run = args.root / f"run{args.scans}"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HOME": str(args.root / "home")}  # the cache goes under --root
    started = time.time()
    if not (data / "annotations.csv").is_file():
        make_luna16(data, seed=7, num_scans=args.scans, shape=SHAPE, spacing_xyz=SPACING_XYZ, subsets=10, tubes=12)
    generated = round(time.time() - started, 1)
    shutil.rmtree(run, ignore_errors=True)
    python = [sys.executable, "-m", "medsight"]
    record = {"scans": args.scans, "shape": list(SHAPE), "spacing_xyz_mm": list(SPACING_XYZ), "cores": os.cpu_count(),
              "generate_s": generated,
              "data_gb": round(sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 1e9, 2)}
    record["plan"] = measured(python + ["plan", str(data), "--out", str(run)], env)
    plan = json.loads((run / "plan.json").read_text(encoding="utf-8"))
    plan.update(iterations_per_epoch=args.iterations, validation_cases=1)
    record["planned_target_spacing"] = plan["target_spacing"]
    if args.target_spacing:
        plan["target_spacing"] = list(args.target_spacing)
    if args.overlap is not None:
        plan["window_overlap"] = args.overlap
    (run / "plan.json").write_text(json.dumps(plan, indent=1), encoding="utf-8")
    record["target_spacing"], record["patch_size"] = plan["target_spacing"], plan["patch_size"]
    record["load_average_before"] = os.getloadavg()
    record["train"] = measured(python + ["train", str(data), "--out", str(run), "--epochs", "1"], env)
    scans = sorted(data.rglob("*.mhd"))[: args.predict]
    record["predict"] = measured(python + ["predict", str(run), *map(str, scans), "--out", str(run / "pred")], env)
    record["predict"]["scans"] = len(scans)
    record["load_average_after"] = os.getloadavg()
    cache = args.root / "home" / ".cache"
    record["cache_gb"] = round(sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 1e9, 2)
    print(json.dumps(record, indent=1))
    with open(Path(__file__).with_name("ct_memory.jsonl"), "a") as handle:
        handle.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
