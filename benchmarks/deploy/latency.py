"""Per-image latency of a classification network: PyTorch (eager, inference mode) against onnxruntime.

Both engines get the same real images (BreastMNIST test split, prepared at each input size as medsight's
predictor prepares them), the same thread count, and are timed in alternating order, one image per call,
with an in-process monotonic clock; outputs are compared on every image.

    python benchmarks/deploy/latency.py --model resnet18 --sizes 28 64 --threads 1 2 --repeats 300
    python benchmarks/deploy/latency.py --plan RUN/plan.json --threads 1 --repeats 60   # any task's planned network

With --plan the network the plan names is built (seeded weights) and timed on standard-normal inputs of the
planned input or patch shape, one patch per call (a sliding-window prediction makes many such calls).

    python benchmarks/deploy/latency.py --detection-run RUN --threads 1 --images 16 --repeats 40 --warmup 5

With --detection-run a trained detector is timed on real prepared images of its validation split: its dense
part, and end to end: PyTorch's eval forward (dense part + postprocess) against what `medsight export` writes
(the whole detector for a 2D Faster R-CNN; else the dense part, followed by the PyTorch postprocess).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "medmnist" / "breastmnist.npz"


def real_inputs(path: Path, size: int, count: int) -> torch.Tensor:
    """BreastMNIST test images prepared for a size-px network (resize, clip, z-score)."""
    from medsight.data.preprocess import prepare_image

    images = np.load(path)["test_images"][:count]
    plan = {"in_channels": 1, "input_size": [size, size],
            "normalization": {"clip": [0.0, 255.0], "mean": [float(images.mean())], "std": [float(images.std())]}}
    return torch.stack([prepare_image(image[None], plan) for image in images])


def planned_network(plan_path: Path, count: int) -> tuple[str, torch.nn.Module, torch.Tensor]:
    """The network a plan.json names (seeded weights) and standard-normal inputs of its planned shape."""
    from medsight.export.onnx import network_input_shape
    from medsight.tasks.registry import get_task

    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    task = get_task(plan["task"])(plan, {"task": plan["task"]})
    model = task.build_model(plan["model"]).eval()
    shape = network_input_shape(plan, {})
    inputs = torch.randn((min(count, 8), *shape), generator=torch.Generator().manual_seed(0))
    return f"{plan['model']} ({plan['task']})", model, inputs


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def time_engines(run_torch, run_onnx, count: int, repeats: int, warmup: int) -> dict:
    """Median and p10-p90 per engine of ``run_<engine>(k)`` (input k), the engines alternating call by call."""
    with torch.inference_mode():
        for i in range(warmup):
            run_torch(i % count)
            run_onnx(i % count)
        torch_ms, onnx_ms = [], []
        for i in range(repeats):
            k = i % count
            order = ("torch", "onnx") if i % 2 == 0 else ("onnx", "torch")  # no engine always runs first
            for engine in order:
                start = time.perf_counter()
                if engine == "torch":
                    run_torch(k)
                    torch_ms.append((time.perf_counter() - start) * 1e3)
                else:
                    run_onnx(k)
                    onnx_ms.append((time.perf_counter() - start) * 1e3)
    pair_ratio = [t / o for t, o in zip(torch_ms, onnx_ms)]
    return {
        "torch_ms": {"median": statistics.median(torch_ms), "p10": percentile(torch_ms, 10), "p90": percentile(torch_ms, 90)},
        "onnx_ms": {"median": statistics.median(onnx_ms), "p10": percentile(onnx_ms, 10), "p90": percentile(onnx_ms, 90)},
        "speedup_median": statistics.median(torch_ms) / statistics.median(onnx_ms),
        "speedup_paired_median": statistics.median(pair_ratio),
    }


def time_network(model, session, inputs: torch.Tensor, repeats: int, warmup: int) -> dict:
    """One network on one image per call, PyTorch against onnxruntime."""
    name = session.get_inputs()[0].name
    arrays = [x[None].numpy() for x in inputs]
    tensors = [x[None] for x in inputs]
    return time_engines(lambda k: model(tensors[k]), lambda k: session.run(None, {name: arrays[k]}), len(tensors),
                        repeats, warmup)


def agreement(model, session, inputs: torch.Tensor) -> dict:
    name = session.get_inputs()[0].name
    with torch.inference_mode():
        expected = model(inputs).numpy()
    got = np.concatenate([session.run(None, {name: x[None].numpy()})[0] for x in inputs])
    return {"max_abs_diff": float(np.abs(expected - got).max()),
            "argmax_agreement": float((expected.argmax(1) == got.argmax(1)).mean()), "inputs": len(inputs)}


def onnx_heads(session, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The exported dense part on onnxruntime, as the tensors the detector's postprocess takes."""
    outputs = session.run(None, {session.get_inputs()[0].name: np.ascontiguousarray(x.numpy())})
    return tuple(torch.from_numpy(o) for o in outputs)


def time_detection(run_path: Path, threads: list[int], images: int, repeats: int, warmup: int) -> list[dict]:
    """A trained detection run on real prepared validation images, one per call: the dense part alone, and
    dense part + the detector's shared postprocess (what predict runs per window), PyTorch against onnxruntime."""
    import onnxruntime as ort

    from medsight.api import load_run
    from medsight.export.onnx import check_inputs, export_model
    from medsight.inference.engines import OnnxEngine
    from medsight.models.detection.dense import DenseHead

    run, task, detector = load_run(run_path)
    inputs, source = check_inputs(run, task, images)
    dense = DenseHead(detector).eval()
    exported = task.export_module(detector)  # what `medsight export` writes
    whole = getattr(exported, "gives_detections", False)
    tensors = [x[None] for x in inputs]
    sizes = [list(inputs.shape[2:])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path, whole_path = Path(tmp) / "dense.onnx", Path(tmp) / "model.onnx"
        export_model(dense, inputs[:1], path, spatial_dynamic=True)
        if whole:
            export_model(exported, inputs[:1], whole_path)
        for count in threads:
            torch.set_num_threads(count)
            options = ort.SessionOptions()
            options.intra_op_num_threads = count
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            if whole:  # the exported graph ends in detections: onnxruntime runs the whole call
                whole_session = ort.InferenceSession(str(whole_path), options, providers=["CPUExecutionProvider"])
                onnx_end_to_end = lambda k: onnx_heads(whole_session, tensors[k])  # noqa: E731
                engine = OnnxEngine(whole_path, threads=count)
            else:
                onnx_end_to_end = lambda k: detector.postprocess(onnx_heads(session, tensors[k]), sizes)  # noqa: E731
                engine = lambda x: onnx_heads(session, x)  # noqa: E731
            stages = {
                "dense": (lambda k: dense(tensors[k]), lambda k: onnx_heads(session, tensors[k])),
                "end_to_end": (lambda k: detector.postprocess(dense(tensors[k]), sizes), onnx_end_to_end),
            }
            with torch.inference_mode():
                head_diff = max(float((a - b).abs().max()) for x in tensors
                                for a, b in zip(dense(x), onnx_heads(session, x)))
                boxes = task.export_agreement(detector, engine, inputs)
            row = {"model": f"{run.load_config().model} ({run.path.name})", "input": [1, *inputs.shape[1:]],
                   "inputs": source, "threads": count, "onnx_end_to_end": "whole graph" if whole else "dense + PyTorch postprocess",
                   **{stage: time_engines(*calls, len(tensors), repeats, warmup) for stage, calls in stages.items()},
                   "agreement": {"max_abs_diff_head_outputs": head_diff, **boxes}}
            rows.append(row)
            for stage in stages:
                r = row[stage]
                print(f"{row['model']} {stage} threads={count}: torch {r['torch_ms']['median']:.1f} ms, onnxruntime "
                      f"{r['onnx_ms']['median']:.1f} ms, speedup {r['speedup_median']:.2f}x "
                      f"(paired {r['speedup_paired_median']:.2f}x)", flush=True)
            print(f"max |diff| of head outputs {head_diff:.1e}; boxes agree on {boxes['cases_agreeing']}/{boxes['cases']} "
                  f"images ({boxes['boxes_torch']} boxes; largest box gap {boxes['max_box_diff']:.1e} px, score gap "
                  f"{boxes['max_score_diff']:.1e}, lowest matched IoU {boxes['min_matched_iou']:.6f})", flush=True)
    return rows


def main(argv=None) -> int:
    import onnxruntime as ort

    from medsight.export.onnx import export_model
    from medsight.models import create_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--plan", type=Path, help="time the network of this plan.json instead (any task)")
    parser.add_argument("--detection-run", type=Path, help="time this trained detection run instead (dense part "
                                                             "and dense part + postprocess, real validation images)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("latency.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_at_start = os.getloadavg()
    results = []
    if args.detection_run is not None:
        results = time_detection(args.detection_run, args.threads, args.images, args.repeats, args.warmup)
    for size in [] if args.detection_run is not None else args.sizes if args.plan is None else [None]:
        torch.manual_seed(0)
        if args.plan is None:
            name = args.model
            model = create_model(args.model, task="classification", spatial_dims=2, in_channels=1, num_classes=2,
                                 input_size=size).eval()
            inputs = real_inputs(args.data, size, args.images)
        else:
            name, model, inputs = planned_network(args.plan, args.images)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.onnx"
            export_model(model, inputs[:1], path)
            for threads in args.threads:
                torch.set_num_threads(threads)
                options = ort.SessionOptions()
                options.intra_op_num_threads = threads
                options.inter_op_num_threads = 1
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                row = {"model": name, "input": [1, *inputs.shape[1:]], "threads": threads,
                       **time_network(model, session, inputs, args.repeats, args.warmup),
                       "agreement": agreement(model, session, inputs)}
                results.append(row)
                print(f"{name} {list(inputs.shape[1:])} threads={threads}: torch {row['torch_ms']['median']:.2f} ms, "
                      f"onnxruntime {row['onnx_ms']['median']:.2f} ms, speedup {row['speedup_median']:.2f}x "
                      f"(paired {row['speedup_paired_median']:.2f}x), max |diff| {row['agreement']['max_abs_diff']:.1e}",
                      flush=True)
    report = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
              "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg(), "torch": torch.__version__, "onnxruntime": ort.__version__,
              "wall_seconds": round(time.perf_counter() - started, 1), "results": results}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
