"""The predictor: one or several trained runs of one task, on PyTorch or onnxruntime, applied to files.

Everything task-specific (reading, preprocessing, postprocessing, what is written) is the task's
``predict_files``; the predictor loads and checks the runs, picks the device and engine, finds the inputs
and hands the task a list of networks that all take and return tensors the same way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from medsight.data.steps import step_settings
from medsight.errors import MedsightError
from medsight.inference.engines import ENGINES, OnnxEngine
from medsight.inference.ensemble import EnsembleRun, check_members
from medsight.io.inputs import discover_inputs
from medsight.jsonio import load_json
from medsight.run import RunFolder, load_run


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class Predictor:
    """Trained runs ready to predict: ``predict_files(inputs, out, explain)`` -> one record per input."""

    def __init__(self, runs: Sequence[str | Path], engine: str = "torch", device: str | None = None,
                 threads: int | None = None):
        if engine not in ENGINES:
            raise MedsightError(None, f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if not runs:
            raise MedsightError(None, "predict needs at least one run folder")
        self.engine = engine
        self.device = device or (default_device() if engine == "torch" else "cpu")
        loaded = [load_run(Path(r), self.device) for r in runs]
        adapters = check_members([(run, task) for run, task, _ in loaded])
        self.runs: list[RunFolder] = [run for run, _, _ in loaded]
        self.task = loaded[0][1]
        self.models: list[Any] = []
        for (run, _, model), adapter in zip(loaded, adapters):
            if engine == "onnx":
                self.models.append(OnnxEngine(run.export_dir / "model.onnx", threads, torch_module=model, prepare=adapter))
            else:
                self.models.append(model if adapter is None else nn.Sequential(adapter, model).to(self.device).eval())
        self.run: RunFolder = self.runs[0] if len(self.runs) == 1 else EnsembleRun(self.runs)

    def predict_files(self, inputs: Sequence[str | Path], out: str | Path, explain: bool = False,
                      series: str | None = None) -> list[dict[str, Any]]:
        """Predict image files, folders of them and DICOM series or study folders; results go to out.

        A study's series is chosen by the plan's ``dicom_series`` rule, or given by its UID (``series``).
        """
        from medsight.io.dicom_series import SeriesRule, series_rule

        found = discover_inputs([Path(p) for p in inputs])
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        with series_rule(SeriesRule.from_plan(self.task.plan, series)):
            return self.task.predict_files(self.run, self.models, found, out, explain)

    def describe(self) -> dict[str, Any]:
        """What the server's GET /model reports: task, classes, input format, engine, metrics of the run."""
        plan, info = self.task.plan, self.task.info
        metrics = {}
        for path in sorted(self.runs[0].path.glob("eval/*/metrics.json")):
            try:
                metrics[path.parent.name] = load_json(path).get("metrics", {})
            except MedsightError:
                continue  # a half-written or broken evaluation is not worth failing /model for
        state = self.run.load_state()
        return {
            "task": info.get("task"), "classes": info.get("classes", []), "multilabel": info.get("multilabel", False),
            "spatial_dims": plan.get("spatial_dims", info.get("spatial_dims")), "channels": info.get("channels"),
            "input": {k: plan[k] for k in ("in_channels", "input_size", "patch_size", "spacing") if k in plan},
            "preprocessing": step_settings(plan),
            "models": [r.load_config().model for r in self.runs], "runs": [r.path.name for r in self.runs],
            "engine": self.engine, "device": self.device, "operating_point": state.get("operating_point"),
            "training": state.get("training", {}), "metrics": metrics,
        }
