"""Where a training step's time goes: batch assembly and augmentation against forward + backward + update.

    python benchmarks/classification/throughput.py DATA.npz --model resnet18_half --steps 20 \
        --out benchmarks/classification/results/throughput.json

The batches come from the task exactly as `medsight train` draws them; the two parts are timed
separately over the same steps, one after the other, in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--model", default=None)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from medsight.api import read_dataset, run_info
    from medsight.config import TrainConfig

    task_cls, dataset = read_dataset(args.data)
    plan = task_cls.make_plan(dataset)
    model_name = args.model or plan["model"]
    task = task_cls(plan, run_info(dataset))
    task.configure(TrainConfig(task=task.name, data=args.data, model=model_name), dataset)
    model = task.build_model(model_name)
    optimizer = task.optimizer(model, 1e-3, 1e-4)
    model.train()

    data_seconds = compute_seconds = 0.0
    images = steps = 0
    epoch = 0
    while steps < args.steps:
        batches = iter(task.train_batches(dataset, dataset.splits["train"], epoch, 0))
        while steps < args.steps:
            started = time.perf_counter()
            batch = next(batches, None)
            if batch is None:
                break
            data_seconds += time.perf_counter() - started
            started = time.perf_counter()
            out = task.training_step(model, batch)
            optimizer.zero_grad(set_to_none=True)
            out["loss"].backward()
            optimizer.step()
            compute_seconds += time.perf_counter() - started
            images += len(batch["image"])
            steps += 1
        epoch += 1
    total = data_seconds + compute_seconds
    threads = torch.get_num_threads()
    record = {
        "command": "python " + shlex.join(sys.argv), "data": Path(args.data).name, "model": model_name,
        "batch_size": task.batch_size, "input_size": plan["input_size"], "steps": steps, "torch_threads": threads,
        "cores": os.cpu_count(), "data_seconds": data_seconds, "compute_seconds": compute_seconds,
        "share_outside_forward_backward": data_seconds / total,
        "images_per_second": images / total, "images_per_second_per_core": images / total / threads,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text(encoding="utf-8")) if out.exists() else []
    existing = [r for r in existing if (r["data"], r["model"]) != (record["data"], record["model"])] + [record]
    out.write_text(json.dumps(existing, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
