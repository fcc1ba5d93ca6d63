"""A training step's achieved FLOP rate for the default networks, as a share of a large matmul's rate.

    OMP_NUM_THREADS=1 python benchmarks/speed/flop_rate.py --threads 1 2 --out benchmarks/speed/flop_rate.json

For each task's default network (and MONAI's UNet beside the 3D default) the plan medsight makes for a real
data set (a synthetic one for 3D detection) gives the input and the batch; one real training batch is drawn by
the task itself (``train_batches``). A step is forward + loss + backward + AdamW update. Its FLOPs are counted
once with ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matmuls, their backward; elementwise work
is not counted), its time is the median of timed steps, and the rate is compared with the rate of a 2048x2048 fp32
``torch.matmul`` (the practical peak) timed in the same process at the same thread count, in alternation with
the steps so that the shared machine's drifting load hits both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"  # the shared data sets beside a checkout (--data-root otherwise)
WORK = HERE.parent / "work" / "speed"

# (row name, data set under the data root, model; None: the plan's default); "spheres3d" and the CHASE_DB1
# raw folder (the segmentation benchmark's layout of the shared images) are made in WORK
CASES = [
    ("classification 2D, BreastMNIST", "medmnist/breastmnist.npz", None),
    ("segmentation 2D, CHASE_DB1", "chase_db1", None),
    ("segmentation 3D, hippocampus", "msd_task04_hippocampus", None),
    ("segmentation 3D, hippocampus", "msd_task04_hippocampus", "unet"),
    ("detection 2D, BCCD", "bccd_voc", None),
    ("detection 2D, BCCD", "bccd_voc", "faster_rcnn"),
    ("detection 3D, synthetic spheres", "spheres3d", None),
    ("detection 3D, synthetic spheres", "spheres3d", "faster_rcnn"),
]


def chase_raw(root: Path, data_root: Path) -> Path:
    """CHASE_DB1 as benchmarks/segmentation/chase_db1.py lays it out (nnU-Net raw, 20 train, 8 test)."""
    import importlib.util

    if (root / "dataset.json").is_file():
        return root
    spec = importlib.util.spec_from_file_location("chase_db1", HERE.parent / "segmentation" / "chase_db1.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.SOURCE = data_root / "chase_db1"
    return module.make_raw(root)


def spheres(root: Path) -> Path:
    """The 3D detection benchmark's LUNA16-like synthetic set (spheres in noisy 80^3 volumes)."""
    from medsight.synthetic.detection import make_spheres_3d

    if not (root / "dataset.json").is_file():
        make_spheres_3d(root, seed=2026, num_cases=40, size=80, radius=(1.5, 15.0), per_case=(1, 3),
                        contrast=(0.2, 0.45), noise=0.08, test_fraction=0.25)
    return root


MATMUL_SIZE = 2048


def matmul_seconds(a: torch.Tensor, b: torch.Tensor) -> float:
    start = time.perf_counter()
    torch.matmul(a, b)
    return time.perf_counter() - start


def training_setup(data: Path, model_name: str | None):
    """Task, model, optimiser and one real training batch, as ``medsight train`` would make them."""
    from medsight import api
    from medsight.config import TrainConfig

    task_cls, dataset = api.read_dataset(data, 0, 0)
    plan_path = WORK / "plans" / f"{data.name}.json"
    if plan_path.is_file():
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    else:
        plan = api.make_plan(task_cls, api.planning_view(dataset), "cpu")
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        plan_path.write_text(json.dumps(plan, indent=1), encoding="utf-8")
    name = model_name or plan["model"]
    config = TrainConfig(task=task_cls.name, data=str(data), model=name, extra={"cache_dir": str(WORK / "cache")})
    task = task_cls(plan, api.run_info(dataset))
    task.configure(config, dataset)
    torch.manual_seed(0)
    model = task.build_model(name).train()
    optimizer = task.optimizer(model, 1e-4, 1e-4)
    batch = next(iter(task.train_batches(dataset, dataset.splits["train"], 0, 0)))
    return task, model, optimizer, batch, plan, name


def step(task, model, optimizer, batch) -> None:
    optimizer.zero_grad(set_to_none=True)
    task.training_step(model, batch)["loss"].backward()
    optimizer.step()


def shape_of(batch) -> list[int]:
    image = batch["image"] if isinstance(batch, dict) else batch[0]
    return list(image.shape) if isinstance(image, torch.Tensor) else [len(image), *image[0].shape]


def measure(row: str, data: Path, model_name: str | None, threads: list[int], steps: int) -> list[dict]:
    """FLOPs of one step, then per thread count steps and matmuls in alternation (the load hits both)."""
    task, model, optimizer, batch, plan, name = training_setup(data, model_name)
    step(task, model, optimizer, batch)  # warm-up: allocations, oneDNN primitives
    with FlopCounterMode(display=False) as counter:
        step(task, model, optimizer, batch)
    flops = counter.get_total_flops()
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    matmul_flops = 2 * MATMUL_SIZE**3
    results = []
    for count in threads:
        torch.set_num_threads(count)
        step(task, model, optimizer, batch)
        matmul_seconds(a, b)
        times, matmuls = [], []
        for _ in range(steps):
            start = time.perf_counter()
            step(task, model, optimizer, batch)
            times.append(time.perf_counter() - start)
            matmuls.append(statistics.median(matmul_seconds(a, b) for _ in range(3)))
        seconds, peak = statistics.median(times), matmul_flops / statistics.median(matmuls) / 1e9
        rate = flops / seconds / 1e9
        paired = statistics.median((flops / t) / (matmul_flops / m) for t, m in zip(times, matmuls))
        results.append({"row": row, "model": name, "batch": shape_of(batch), "threads": count,
                        "gflop_per_step": flops / 1e9, "step_seconds": seconds,
                        "step_seconds_min_max": [min(times), max(times)], "gflop_per_second": rate,
                        "matmul_gflop_per_second": peak, "share_of_matmul": rate / peak,
                        "share_of_matmul_paired_median": paired})
        print(f"{row} {name} {shape_of(batch)} threads={count}: {flops / 1e9:.1f} GFLOP/step, "
              f"{seconds * 1e3:.0f} ms, {rate:.1f} GFLOP/s = {rate / peak:.0%} of matmul {peak:.1f} "
              f"(paired {paired:.0%})", flush=True)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per network and thread count")
    parser.add_argument("--only", nargs="*", help="rows whose name contains one of these words")
    parser.add_argument("--data-root", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=HERE / "flop_rate.json")
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    spheres(WORK / "spheres3d")
    rows = []

    def write() -> None:
        report = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                  "cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
                  "torch": torch.__version__, "load_average_at_start": load_at_start,
                  "load_average_at_end": os.getloadavg(), "wall_seconds": round(time.perf_counter() - started, 1),
                  "rows": rows}
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    for row, name, model_name in CASES:
        if args.only and not any(word in f"{row} {model_name}" for word in args.only):
            continue
        if name == "spheres3d":
            data = WORK / name
        elif name == "chase_db1":
            data = chase_raw(WORK / name, args.data_root)
        else:
            data = args.data_root / name
        rows += measure(row, data, model_name, args.threads, args.steps)
        write()  # after every network: a long run killed midway keeps what it measured
    return 0


if __name__ == "__main__":
    sys.exit(main())
