"""The predictor: one or several trained runs of one task, on PyTorch or onnxruntime, applied to files.

Everything task-specific (reading, preprocessing, postprocessing, what is written) is the task's
``predict_files``; the predictor loads and checks the runs, picks the device and engine, finds the inputs
and hands the task a list of networks that all take and return tensors the same way.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch.nn as nn

from medsight.data.steps import step_settings
from medsight.errors import MedsightError
from medsight.inference.engines import ENGINES, OnnxEngine
from medsight.inference.ensemble import EnsembleRun, check_members
from medsight.io.inputs import discover_inputs
from medsight.jsonio import load_json
from medsight.run import RunFolder, load_run


class Predictor:
    """Trained runs ready to predict: ``predict_files(inputs, out, explain)`` -> one record per input.

    device: --device (auto, cpu, cuda:N) for the torch engine; onnx runs on onnxruntime's CPU provider.
    tta, overlap, batch: test-time settings that replace the plan's (medsight.inference.settings).
    """

    def __init__(self, runs: Sequence[str | Path], engine: str = "torch", device: str | None = None,
                 threads: int | None = None, tta: str | None = None, overlap: float | None = None,
                 batch: int | None = None):
        from medsight.inference.settings import test_time_plan
        from medsight.device import resolve_device

        if engine not in ENGINES:
            raise MedsightError(None, f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if not runs:
            raise MedsightError(None, "predict needs at least one run folder")
        self.engine = engine
        self.device = str(resolve_device(device)) if engine == "torch" else "cpu"
        loaded = [load_run(Path(r), self.device) for r in runs]
        adapters = check_members([(run, task) for run, task, _ in loaded])
        self.runs: list[RunFolder] = [run for run, _, _ in loaded]
        self.task = loaded[0][1]
        self.task.plan = test_time_plan(self.task.plan, self.task.name, tta, overlap, batch)
        self.models: list[Any] = []
        for (run, _, model), adapter in zip(loaded, adapters):
            if engine == "onnx":
                self.models.append(OnnxEngine(run.export_dir / "model.onnx", threads, torch_module=model, prepare=adapter))
            else:
                self.models.append(model if adapter is None else nn.Sequential(adapter, model).to(self.device).eval())
        self.run: RunFolder = self.runs[0] if len(self.runs) == 1 else EnsembleRun(self.runs)

    def weights_digest(self) -> str:
        from medsight.inference.journal import weights_digest

        return weights_digest(run.weights_path for run in self.runs)

    def predict_files(self, inputs: Sequence[str | Path], out: str | Path, explain: bool = False,
                      series: str | None = None, shard: str | None = None, resume: bool = False,
                      echo: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
        """Predict image files, folders of them and DICOM series or study folders; results go to out.

        A study's series is chosen by the plan's ``dicom_series`` rule, or given by its UID (``series``).

        Case by case, each finished case appended to out/predictions.jsonl; a case that fails is recorded there
        and skipped (a single input fails the call instead). shard "i/n": only every n-th input from the i-th.
        resume (--continue): skip the inputs the journal says these same weights already predicted.
        """
        from medsight.inference.journal import JOURNAL, Journal, latest_entries, parse_shard, shard_inputs
        from medsight.io.dicom_series import SeriesRule, series_rule
        from medsight.io.inputs import output_names
        from medsight.progress import Progress

        echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        found = discover_inputs([Path(p) for p in inputs])
        single = len(found) == 1
        names = dict(zip(found, output_names(found)))  # unique over all inputs, whichever shard predicts them
        mine = shard_inputs(found, parse_shard(shard))
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        digest = self.weights_digest()
        journal_path = out / JOURNAL
        done = latest_entries(journal_path, digest) if resume else {}
        todo = [p for p in mine if done.get(str(p), {}).get("status") != "ok"]
        if resume and len(todo) < len(mine):
            echo(f"predict: {len(mine) - len(todo)} of {len(mine)} input(s) already predicted by these weights, skipped")
        journal = Journal(journal_path, fresh=not resume)
        meter = Progress(len(todo), "predict", echo=echo)
        try:
            for path in todo:
                started = time.perf_counter()
                entry: dict[str, Any] = {"input": str(path), "weights_sha256": digest}
                try:
                    with series_rule(SeriesRule.from_plan(self.task.plan, series)):
                        records = self.task.predict_files(self.run, self.models, [path], out, explain,
                                                          names=[names[path]])
                    entry.update(status="ok", records=records)
                except (MedsightError, OSError, ValueError, RuntimeError) as exc:
                    if single:
                        raise
                    problem = exc.problem if isinstance(exc, MedsightError) else f"{type(exc).__name__}: {exc}"
                    entry.update(status="error", error=problem)
                    echo(f"medsight: skipped {path}: {problem}")
                entry["seconds"] = round(time.perf_counter() - started, 3)
                journal.write(entry)
                done[str(path)] = entry
                meter.advance()
        finally:
            journal.close()
        wanted = [done[str(p)] for p in mine if str(p) in done]
        results = [r for e in wanted if e["status"] == "ok" for r in e["records"]]
        failures = [(Path(e["input"]), e["error"]) for e in wanted if e["status"] != "ok"]
        if not results:
            first = failures[0] if failures else None
            raise MedsightError(out, f"no input could be predicted ({first[0]}: {first[1]})" if first else "no inputs to predict")
        self.task.write_prediction_summary(self.run, out, results, failures)
        return results

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
