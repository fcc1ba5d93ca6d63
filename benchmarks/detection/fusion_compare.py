"""Two or more detection runs as an ensemble on one split: each member alone, then their boxes merged by
per-class NMS and by weighted box fusion (plan "ensemble_fusion"), scored by medsight's detection metric.

Usage: python benchmarks/detection/fusion_compare.py OUT.json SPLIT RUN RUN [RUN...]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def main(out: Path, split: str, runs: list[str]) -> None:
    from medsight.api import read_dataset
    from medsight.run import load_run

    loaded = [load_run(r) for r in runs]
    run, task, _ = loaded[0]
    _, dataset = read_dataset(run.load_config().data)
    indices = np.asarray(dataset.splits[split])
    models = [model.eval() for _, _, model in loaded]
    result = {"command": "python benchmarks/detection/fusion_compare.py " + " ".join([str(out), split, *runs]),
              "split": split, "cases": int(len(indices)), "runs": runs}

    def score(members, fusion):
        task.plan["ensemble_fusion"] = fusion
        started = time.process_time()
        metrics = task.score_cases(members, dataset, indices)[0]["metrics"]
        keep = ("map_50", "map50_voc_allpoint", "map_50_95", "mar_100", "cpm")
        return {**{k: metrics[k] for k in keep if k in metrics}, "cpu_seconds": round(time.process_time() - started, 1)}

    for k, model in enumerate(models):
        result[f"member_{k}"] = score([model], "wbf")
        print(json.dumps({f"member_{k}": result[f"member_{k}"]}), flush=True)
    for fusion in ("nms", "wbf"):
        result[fusion] = score(models, fusion)
        print(json.dumps({fusion: result[fusion]}), flush=True)
    out.write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])
