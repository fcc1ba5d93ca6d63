"""Export a run's network to ONNX and prove it computes what PyTorch computes.

RUN/export/model.onnx has a dynamic batch axis (and dynamic spatial axes when the network is fully
convolutional: its outputs follow the input's spatial shape, each at a fixed stride). It is checked with onnxruntime against PyTorch
on real cases of the run's validation split (read from dataset.json "source"), or on synthetic inputs of the
planned shape when the data set is not there; RUN/export/export.json records the opset, the inputs used,
the largest absolute difference and whether it stays within the fp32 tolerance. A task whose network ends in
Python post-processing exports its tensor part (``export_module``) and compares what that post-processing
makes of either engine's outputs (``export_agreement``: detection's boxes). A network that is a whole detector
(``gives_detections``: the 2D Faster R-CNN with its postprocess) is exported for one image per call with the
outputs boxes, scores, labels, and checked by its detections alone.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medsight.data.steps import network_input, preprocessing_record
from medsight.errors import MedsightError
from medsight.inference.engines import OnnxEngine
from medsight.io.formats import read_dataset
from medsight.jsonio import atomic_write, save_json
from medsight.run import load_run, software_versions
from medsight.device import resolve_device

OPSET = 17
TOLERANCE_FP32 = 1e-4
CHECK_CASES = 16
INPUT_NAME = "image"


def network_input_shape(plan: dict[str, Any], info: dict[str, Any]) -> tuple[int, ...]:
    """(C, *spatial) of one network input, from the plan's record of it."""
    shape = network_input(plan, len(info.get("channels") or [1]))
    return (shape["channels"], *shape["size"])


def check_inputs(run: Any, task: Any, count: int = CHECK_CASES) -> tuple[torch.Tensor, str]:
    """Real prepared cases of the validation split (the task's own preprocessing), else synthetic ones; and how."""
    info = run.load_dataset_info()
    source = info.get("source")
    shape = network_input_shape(task.plan, info)
    reason = "dataset.json has no source"
    if source and Path(source).exists():
        config = run.load_config()
        try:
            dataset = read_dataset(source, config.seed, config.fold)
            split = next((s for s in ("val", "test", "train") if len(dataset.splits.get(s, [])) > 0), None)
            if split is not None:
                indices = np.asarray(dataset.splits[split])[:count]
                inputs = prepare_for_export(task, dataset, indices)
                if inputs is not None:
                    return inputs, f"{len(indices)} cases of the {split} split of {source}"
                reason = f"the {task.name} task does not prepare whole network inputs (no export_inputs)"
            else:
                reason = f"{source} has no cases"
        except MedsightError as exc:
            reason = f"the data set could not be read ({exc})"
    elif source:
        reason = f"the data set {source} is not there"
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn((min(count, 4), *shape), generator=generator)
    return inputs, f"synthetic: {len(inputs)} standard-normal inputs of shape {list(shape)} ({reason})"


def prepare_for_export(task: Any, dataset: Any, indices: np.ndarray) -> torch.Tensor | None:
    """Network inputs (N, C, *spatial) of some cases from the task's ``export_inputs(dataset, indices)`` hook
    (its own preprocessing), or None when the task has none."""
    hook = getattr(task, "export_inputs", None)
    return hook(dataset, indices) if callable(hook) else None


def flat_outputs(output: Any) -> list[torch.Tensor]:
    """A network's output as a list of tensors (tensor, tuple/list of tensors, or dict in key order)."""
    if isinstance(output, torch.Tensor):
        return [output]
    items = [t for _, t in sorted(output.items())] if isinstance(output, dict) else list(output)
    if not all(isinstance(t, torch.Tensor) for t in items):
        kinds = sorted({type(t).__name__ for t in items if not isinstance(t, torch.Tensor)})
        raise MedsightError(None, f"the network returns {', '.join(kinds)} rather than tensors; its task must offer "
                                  "export_module(model) giving a tensor-only network to export")
    return items


class _Flat(nn.Module):
    """Wraps a network so that ONNX sees a tensor or a tuple of tensors as output."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        outputs = flat_outputs(self.model(x))
        return outputs[0] if len(outputs) == 1 else tuple(outputs)


# Grown sizes tried on a fully convolutional network (U-Nets need multiples of their total stride).
GROWTH = (16, 32, 64)


def output_strides(outputs: list[torch.Tensor], example: torch.Tensor) -> list[tuple[int, ...]] | None:
    """Per output, the whole stride at which its spatial axes follow the input's; None when one does not."""
    strides = []
    for output in outputs:
        if output.ndim != example.ndim:
            return None
        pairs = list(zip(example.shape[2:], output.shape[2:]))
        if any(out == 0 or size % out for size, out in pairs):
            return None
        strides.append(tuple(size // out for size, out in pairs))
    return strides


def other_spatial_shape(model: nn.Module, example: torch.Tensor, divisor: int | None = None) -> tuple[int, ...] | None:
    """For fully convolutional networks, a larger input shape that runs with outputs at the same strides
    (a segmentation map at stride 1, a detector's per-level maps at theirs); else None."""
    with torch.no_grad():
        strides = output_strides(flat_outputs(model(example[:1])), example)
        if strides is None:
            return None
        # a detector pads its inputs to multiples of its size divisor: grow by that first
        for growth in ((int(divisor),) if divisor else ()) + GROWTH:
            bigger = torch.zeros((1, example.shape[1], *[s + growth for s in example.shape[2:]]))
            try:
                grown = flat_outputs(model(bigger))
            except RuntimeError:
                continue
            if output_strides(grown, bigger) == strides:
                return tuple(bigger.shape[1:])
    return None


def spatial_follows_input(model: nn.Module, example: torch.Tensor) -> bool:
    """True for fully convolutional networks: a larger input still runs and gives an output of its own size."""
    return other_spatial_shape(model, example) is not None


def max_abs_diff(model: nn.Module, session: Any, inputs: torch.Tensor) -> tuple[float, float]:
    """Largest |onnxruntime - PyTorch| over all outputs, and the share of cases whose argmax agrees."""
    reference = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad():
        expected = [t.float().cpu().numpy() for t in flat_outputs(model(inputs.to(reference)))]
    got = session.run(None, {INPUT_NAME: inputs.numpy().astype(np.float32)})
    worst = max(float(np.max(np.abs(e - g))) if e.size else 0.0 for e, g in zip(expected, got))
    agree = float(np.mean(expected[0].argmax(1) == got[0].argmax(1))) if expected[0].ndim >= 2 else 1.0
    return worst, agree


def export_model(model: nn.Module, example: torch.Tensor, target: Path, spatial_dynamic: bool = False,
                 opset: int = OPSET) -> tuple[list[str], dict[str, dict[int, str]]]:
    """Write an fp32 ONNX file (atomically, checked by onnx) with a dynamic batch axis; output names and axes."""
    import onnx

    model = model if isinstance(model, _Flat) else _Flat(model).eval()
    declared = getattr(model.model, "onnx_axes", None)  # a network that names its own outputs and axes
    dynamic_input = {0: "batch"}
    if spatial_dynamic:
        dynamic_input.update({axis: f"dim{axis - 2}" for axis in range(2, example.ndim)})
    with torch.no_grad():
        output_count = len(flat_outputs(model(example)))
    output_names = ["output"] if output_count == 1 else [f"output{i}" for i in range(output_count)]
    # a fully convolutional network's outputs follow the input's spatial size (several outputs: each its own)
    if spatial_dynamic and output_count == 1:
        dynamic_outputs = {output_names[0]: dict(dynamic_input)}
    elif spatial_dynamic:
        dynamic_outputs = {name: {0: "batch", **{axis: f"{name}_dim{axis - 2}" for axis in range(2, example.ndim)}}
                           for name in output_names}
    else:
        dynamic_outputs = {name: {0: "batch"} for name in output_names}
    dynamic_axes = {INPUT_NAME: dynamic_input, **dynamic_outputs}
    if callable(declared):
        output_names, dynamic_axes = declared()

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter announces its deprecation on every call
            torch.onnx.export(model, (example,), tmp, dynamo=False, input_names=[INPUT_NAME],
                              output_names=output_names, dynamic_axes=dynamic_axes, opset_version=opset,
                              do_constant_folding=True)
        onnx.checker.check_model(tmp)

    try:
        atomic_write(target, write)
    except (RuntimeError, TypeError, ValueError, onnx.checker.ValidationError) as exc:
        raise MedsightError(target, f"the network {type(model.model).__name__} cannot be exported to ONNX "
                                    f"({str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__})") from None
    return output_names, dynamic_axes


def whole_detector_checks(model: nn.Module, agreement: Any, target: Path, inputs: torch.Tensor,
                          plan: dict[str, Any]) -> dict[str, Any]:
    """A detector exported with its postprocess, against PyTorch's detections: on the check inputs, and on
    them zero-padded by the size divisor (the graph's spatial axes are dynamic)."""
    engine = OnnxEngine(target)
    grow = int(plan.get("size_divisor") or GROWTH[0])
    padded = torch.nn.functional.pad(inputs[:4], [0, grow] * (inputs.ndim - 2))
    return {"final_outputs": agreement(model, engine, inputs),
            "other_spatial_size": {"shape": list(padded.shape), **agreement(model, engine, padded)}}


def export_run(run_path: str | Path, fmt: str = "onnx", opset: int = OPSET, cases: int = CHECK_CASES,
               device: str = "cpu") -> dict[str, Any]:
    """Write RUN/export/model.onnx and export.json; fail (keeping export.json) when the check is not met.

    device: where the PyTorch reference of the check runs (--device); the ONNX graph is always traced on the CPU.
    """
    import onnx
    import onnxruntime as ort

    if fmt != "onnx":
        raise MedsightError(None, f"unknown export format {fmt!r}; medsight exports onnx")
    started = time.perf_counter()
    run, task, model = load_run(run_path, "cpu")
    hook = getattr(task, "export_module", None)  # tasks whose networks end in Python post-processing
    full_model, model = model, _Flat(hook(model) if callable(hook) else model).eval()
    inputs, source = check_inputs(run, task, cases)
    target = run.export_dir / "model.onnx"
    agreement = getattr(task, "export_agreement", None)  # what the task makes of the outputs (detection: boxes)
    if getattr(model.model, "gives_detections", False):  # a whole detector: its outputs are the detections
        output_names, dynamic_axes = export_model(model, inputs[:1], target, opset=opset)
        spatial_dynamic, checks = True, whole_detector_checks(full_model, agreement, target, inputs, task.plan)
        worst = max(c["max_score_diff"] for c in checks.values())  # the boxes have their own tolerance
    else:
        other_shape = other_spatial_shape(model, inputs[:1], task.plan.get("size_divisor"))
        spatial_dynamic = other_shape is not None
        output_names, dynamic_axes = export_model(model, inputs[:1], target, spatial_dynamic, opset)
        session = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
        model.to(resolve_device(device))
        with torch.backends.cudnn.flags(allow_tf32=False):  # TF32 convolutions alone differ by more than the tolerance
            diff, agree = max_abs_diff(model, session, inputs)
            diff_single, _ = max_abs_diff(model, session, inputs[:1])
        model.cpu()
        checks = {"batch": {"cases": len(inputs), "max_abs_diff": diff, "argmax_agreement": agree},
                  "batch_of_one": {"max_abs_diff": diff_single}}
        if spatial_dynamic:
            other = torch.randn((2, *other_shape), generator=torch.Generator().manual_seed(1))
            checks["other_spatial_size"] = {"shape": list(other.shape), "max_abs_diff": max_abs_diff(model, session, other)[0]}
        worst = max(c["max_abs_diff"] for c in checks.values())
        if callable(agreement):
            checks["final_outputs"] = agreement(full_model, OnnxEngine(target), inputs)
    agrees = all(c.get("agree", True) for c in checks.values())
    result = {
        "format": "onnx", "path": str(target), "opset": int(onnx.load(str(target)).opset_import[0].version),
        "exporter": "torch.onnx.export (TorchScript)", "precision": "fp32", "input_name": INPUT_NAME,
        "output_names": output_names, "input_shape": list(inputs.shape[1:]), "dynamic_axes": dynamic_axes,
        "fully_convolutional": spatial_dynamic, "check_inputs": source, "checks": checks,
        # what runs before the network (medsight.data.steps, the same code as training), with the plan values
        # each step applies, so that model.onnx can be fed without plan.json
        "preprocessing": preprocessing_record(task.preprocessing_plan),
        "network_input": network_input(task.plan, len(run.load_dataset_info().get("channels") or [1])),
        "max_abs_diff": worst, "tolerance": TOLERANCE_FP32, "passed": worst <= TOLERANCE_FP32 and agrees,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(), "seconds": round(time.perf_counter() - started, 2),
        "versions": {**software_versions(), "onnx": onnx.__version__, "onnxruntime": ort.__version__},
    }
    save_json(run.export_dir / "export.json", result)
    if not result["passed"]:
        target.unlink()
        why = (f"the ONNX model differs from PyTorch by {worst:.2e} (more than {TOLERANCE_FP32:.0e})" if worst > TOLERANCE_FP32
               else f"the {task.name} results on ONNX outputs differ from those on PyTorch outputs")
        raise MedsightError(run.export_dir / "export.json", f"{why}; model.onnx removed")
    return result
