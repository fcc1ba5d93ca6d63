"""`medsight evaluate RUN RUN ...`: several runs (folds, seeds) of one task evaluated as an ensemble.

Each member is evaluated on its own first (RUN/eval/<split>/), then the members' probabilities are averaged
(detection: the union of the members' boxes, merged by per-class NMS at IoU 0.5, as overlapping sliding
windows are; or, with "ensemble_fusion": "wbf" in the first run's plan.json, fused by weighted box fusion,
medsight.tasks.detection.fusion) and the task's own evaluation writes metrics.json, predictions and report.html for the
ensemble, with every member's metrics beside its own in metrics.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn

from medsight.errors import MedsightError
from medsight.evaluation.runs import evaluate_run, evaluation_data, record_scored, set_nsd_tolerance
from medsight.inference.ensemble import EnsembleRun, check_members
from medsight.jsonio import load_json, save_json
from medsight.run import load_run

SUPPORTED = ("classification", "segmentation", "detection")
COMBINE = {"detection": "union of the members' boxes, per-class NMS at IoU 0.5",
           "detection-wbf": "the members' boxes fused by weighted box fusion at IoU 0.55"}


def combine_key(task: Any) -> str:
    """The COMBINE entry that describes how this task's ensemble merges its members."""
    name = str(task.info.get("task"))
    return f"{name}-wbf" if name == "detection" and task.plan.get("ensemble_fusion") == "wbf" else name


class MeanProbabilities(nn.Module):
    """Several networks as one: the log of their mean softmax (multi-label: the logit of their mean sigmoid).

    Tasks turn outputs into probabilities with softmax or sigmoid, which undo these, so the task code sees
    exactly the averaged probabilities and needs no ensemble branch.
    """

    def __init__(self, members: Sequence[nn.Module], multilabel: bool = False):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.multilabel = multilabel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squash = torch.sigmoid if self.multilabel else (lambda logits: torch.softmax(logits, dim=1))
        # float64: the round trip through log (logit) and softmax (sigmoid) then loses nothing visible in float32
        mean = torch.stack([squash(m(x).double()) for m in self.members]).mean(0)
        tiny = torch.finfo(torch.float64).tiny
        if self.multilabel:
            mean = mean.clamp(tiny, 1 - 1e-16)
            return torch.log(mean) - torch.log1p(-mean)
        return torch.log(mean.clamp_min(tiny))


def default_out(first_run: str | Path, split: str) -> Path:
    return Path(first_run) / "eval" / f"{split}-ensemble"


def evaluate_ensemble(runs: Sequence[str | Path], data: str | Path | None = None, split: str = "test",
                      out: str | Path | None = None, nsd_tolerance: Any = None, device: str = "auto") -> dict[str, Any]:
    """Evaluate each run, then their averaged probabilities -> OUT/metrics.json (with "members") and report.html."""
    loaded = [load_run(r, device) for r in runs]
    task = loaded[0][1]
    if task.info.get("task") not in SUPPORTED:
        raise MedsightError(loaded[0][0].path, f"ensemble evaluation supports {', '.join(SUPPORTED)} runs, "
                                               f"not {task.info.get('task')}")
    adapters = check_members([(run, member_task) for run, member_task, _ in loaded])
    networks = [model if adapter is None else nn.Sequential(adapter, model).to(task.device)
                for (_, _, model), adapter in zip(loaded, adapters)]
    set_nsd_tolerance(task, nsd_tolerance, loaded[0][0].path)
    if task.info.get("task") == "detection":
        model = [network.eval() for network in networks]  # detect_prepared merges the members' boxes
    else:
        model = MeanProbabilities(networks, bool(task.plan.get("multilabel", False))).eval()
    run = EnsembleRun([r for r, _, _ in loaded])
    config = run.load_config()
    source = data or config.data
    dataset = evaluation_data(config, data, task.info)
    if split not in dataset.splits:
        raise MedsightError(source, f"has no split {split!r} (it has {', '.join(dataset.splits)})")
    members = [{"run": str(Path(r).resolve()),
                "metrics": evaluate_run(r, data=data, split=split, nsd_tolerance=nsd_tolerance, device=device)["metrics"]} for r in runs]
    out_dir = Path(out) if out else default_out(runs[0], split)
    result = task.evaluate(run, model, dataset, split, out_dir)
    metrics_path = out_dir / "metrics.json"
    written = load_json(metrics_path)
    written["ensemble"] = {"runs": [m["run"] for m in members], "combine": COMBINE.get(combine_key(task), "mean of the members' probabilities")}
    written["members"] = members
    written.setdefault("definitions", {})["ensemble"] = written["ensemble"]["combine"]
    save_json(metrics_path, written)
    record_scored(out_dir, dataset, split)
    return {**result, "ensemble": written["ensemble"], "members": members}
