"""Evaluate a run's last-epoch weights (RUN/checkpoint.pt) instead of its best-by-validation ones.

    python benchmarks/detection/eval_last.py RUN [--split test]   # -> RUN/eval/<split>_last_epoch/
"""

from __future__ import annotations

import argparse
import json

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from medsight import api
    from medsight.training.checkpoint import load_checkpoint

    run, task, model = api.load_run(args.run)
    checkpoint = load_checkpoint(run.checkpoint_path)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    config = run.load_config()
    _, dataset = api.read_dataset(config.data, config.seed, config.fold)
    result = task.evaluate(run, model, dataset, args.split, run.path / "eval" / f"{args.split}_last_epoch")
    print(json.dumps({"epoch": checkpoint["progress"]["epoch"], "metrics": result["metrics"],
                      "per_class": result["per_class"]}, indent=1))


if __name__ == "__main__":
    main()
