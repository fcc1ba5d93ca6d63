"""Training-step time of the default networks under the settings that cost nothing to change, side by side.

    OMP_NUM_THREADS=1 python benchmarks/speed/step_settings.py --rounds 4 --out benchmarks/speed/step_settings.json

Per network (the plans and real batches of flop_rate.py), one thread: the step as medsight runs it; with the
model and batch in channels_last (2D) / channels_last_3d (3D) memory format; with oneDNN (mkldnn) switched off,
which sends convolutions to PyTorch's own im2col kernels; and, for a 3D network, one step at twice the plan's
batch against two steps of the plan's batch (the layout of the same work). The variants run round-robin, the
order rotating each round, on copies of one model and one batch, so the machine's drifting load hits all.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from flop_rate import CASES, DATA, WORK, chase_raw, spheres, step, training_setup  # noqa: E402

ROWS = ("classification", "segmentation 2D", "segmentation 3D", "detection 2D")


def channels_last(batch: dict, dims: int) -> dict:
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    return {**batch, "image": batch["image"].contiguous(memory_format=fmt)}


def doubled(batch: dict) -> dict:
    return {k: (torch.cat([v, v]) if isinstance(v, torch.Tensor) else list(v) + list(v)) for k, v in batch.items()}


def variants(task, model, batch, plan) -> dict:
    dims = int(plan.get("spatial_dims", 2))
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    last_model = copy.deepcopy(model).to(memory_format=fmt)
    last_opt = task.optimizer(last_model, 1e-4, 1e-4)
    last_batch = channels_last(batch, dims)
    plain_opt = task.optimizer(model, 1e-4, 1e-4)

    def without_mkldnn():
        with torch.backends.mkldnn.flags(enabled=False):
            step(task, model, plain_opt, batch)

    calls = {"as medsight runs it": lambda: step(task, model, plain_opt, batch),
             f"channels_last{'_3d' if dims == 3 else ''}": lambda: step(task, last_model, last_opt, last_batch),
             "mkldnn off": without_mkldnn}
    if dims == 3:
        big = doubled(batch)

        def two_steps():
            step(task, model, plain_opt, batch)
            step(task, model, plain_opt, batch)
        calls["two steps of the batch"] = two_steps
        calls["one step of twice the batch"] = lambda: step(task, model, plain_opt, big)
    return calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--data-root", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    spheres(WORK / "spheres3d")
    rows = []
    for row, name, model_name in CASES:
        if model_name is not None or not row.startswith(ROWS):
            continue
        data = chase_raw(WORK / name, args.data_root) if name == "chase_db1" else args.data_root / name
        task, model, optimizer, batch, plan, model_name = training_setup(data, None)
        calls = variants(task, model, batch, plan)
        names = list(calls)
        times = {n: [] for n in names}
        for r in range(args.rounds + 1):  # the first round warms up and is not counted
            shift = r % len(names)
            for n in names[shift:] + names[:shift]:
                start = time.perf_counter()
                calls[n]()
                if r:
                    times[n].append(time.perf_counter() - start)
        base = times[names[0]]
        for n in names:
            reference = times["two steps of the batch"] if n == "one step of twice the batch" else base
            rows.append({"row": row, "model": model_name, "variant": n, "median_seconds": statistics.median(times[n]),
                         "seconds": times[n],
                         "speedup_paired_median": statistics.median(b / t for b, t in zip(reference, times[n]))})
            print(f"{row} {model_name} {n:30s} {statistics.median(times[n]) * 1e3:8.0f} ms  "
                  f"x{rows[-1]['speedup_paired_median']:.2f} against "
                  f"{'two steps of the batch' if n == 'one step of twice the batch' else names[0]}", flush=True)
        report = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
                  "threads": 1, "torch": torch.__version__, "load_average_at_start": load_at_start,
                  "load_average_at_end": os.getloadavg(), "wall_seconds": round(time.perf_counter() - started, 1),
                  "rows": rows}
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
