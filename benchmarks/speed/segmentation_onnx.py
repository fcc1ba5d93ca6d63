"""The planned 3D segmentation network on PyTorch and onnxruntime, with the settings that might make either faster.

    OMP_NUM_THREADS=1 python benchmarks/speed/segmentation_onnx.py --plan benchmarks/work/deploy/hippo_plan/plan.json \\
        --threads 1 --repeats 15 --out benchmarks/speed/segmentation_onnx.json

One planned patch per call (batch 1, as benchmarks/deploy/latency.py times it), seeded weights, standard-normal
inputs. Every variant is timed round-robin in one process, the order rotating each round, so that the shared
machine's drifting load hits all of them; the figure to read is each variant's median against PyTorch's median
and the median of the per-round ratios. Variants: PyTorch eager (contiguous and channels_last_3d), onnxruntime
as medsight's engine creates it (medsight.inference.engines.OnnxEngine), with graph optimisation levels
basic / extended / all, denormals flushed, a fixed input shape instead of dynamic axes, and opset 17 / 20.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from latency import planned_network  # noqa: E402  (the deploy benchmark's planned network, same weights)


def session(path: Path, threads: int, level: str = "all", denormal_zero: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as medsight's OnnxEngine
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    if denormal_zero:
        options.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def round_robin(calls: dict, repeats: int) -> dict[str, list[float]]:
    times = {name: [] for name in calls}
    names = list(calls)
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - start) * 1e3)
    return times


def main(argv=None) -> int:
    import onnxruntime as ort

    from medsight.export.onnx import export_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started, load_at_start = time.perf_counter(), os.getloadavg()
    torch.set_num_threads(args.threads)
    name, model, inputs = planned_network(args.plan, 1)
    x = inputs[:1]
    x_last = x.contiguous(memory_format=torch.channels_last_3d)
    model_last = copy.deepcopy(model).to(memory_format=torch.channels_last_3d)
    array = x.numpy()
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"dynamic17": Path(tmp) / "dynamic17.onnx", "fixed17": Path(tmp) / "fixed17.onnx",
                 "dynamic20": Path(tmp) / "dynamic20.onnx"}
        export_model(model, x, paths["dynamic17"], spatial_dynamic=True)  # what `medsight export` writes
        export_model(model, x, paths["fixed17"], spatial_dynamic=False)
        export_model(model, x, paths["dynamic20"], spatial_dynamic=True, opset=20)
        sessions = {
            "onnxruntime (medsight export, engine settings)": session(paths["dynamic17"], args.threads),
            "onnxruntime, optimisation basic": session(paths["dynamic17"], args.threads, "basic"),
            "onnxruntime, optimisation extended": session(paths["dynamic17"], args.threads, "extended"),
            "onnxruntime, denormals as zero": session(paths["dynamic17"], args.threads, denormal_zero=True),
            "onnxruntime, fixed input shape": session(paths["fixed17"], args.threads),
            "onnxruntime, opset 20": session(paths["dynamic20"], args.threads),
        }
        calls = {"pytorch": lambda: model(x), "pytorch, channels_last_3d": lambda: model_last(x_last)}
        calls.update({label: (lambda s=s: s.run(None, {"image": array})) for label, s in sessions.items()})
        with torch.inference_mode():
            expected = model(x).numpy()
            agreement = {label: float(np.abs(s.run(None, {"image": array})[0] - expected).max())
                         for label, s in sessions.items()}
            agreement["pytorch, channels_last_3d"] = float(np.abs(model_last(x_last).numpy() - expected).max())
            round_robin(calls, args.warmup)
            times = round_robin(calls, args.repeats)
    base = times["pytorch"]
    rows = []
    for label, values in times.items():
        row = {"variant": label, "median_ms": statistics.median(values),
               "p10_ms": float(np.percentile(values, 10)), "p90_ms": float(np.percentile(values, 90)),
               "speedup_vs_pytorch_medians": statistics.median(base) / statistics.median(values),
               "speedup_vs_pytorch_paired_median": statistics.median(b / v for b, v in zip(base, values)),
               "max_abs_diff_vs_pytorch": agreement.get(label, 0.0)}
        rows.append(row)
        print(f"{label:48s} {row['median_ms']:8.1f} ms  x{row['speedup_vs_pytorch_medians']:.2f} "
              f"(paired x{row['speedup_vs_pytorch_paired_median']:.2f})  max|diff| {row['max_abs_diff_vs_pytorch']:.1e}",
              flush=True)
    report = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "model": name, "input": list(x.shape), "threads": args.threads, "torch": torch.__version__,
              "onnxruntime": ort.__version__, "load_average_at_start": load_at_start,
              "load_average_at_end": os.getloadavg(), "wall_seconds": round(time.perf_counter() - started, 1),
              "rows": rows}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
