"""`medsight card RUN`: MODEL_CARD.md in the Hugging Face model-card format, from the run folder alone.

The YAML header (between --- lines) carries the model-index evaluation results; it is written as JSON
flow values, which every YAML parser reads, so no YAML library is needed to write it. The prose says what
the model does, what it must not be used for, the data, the preprocessing, the training, the figures with
their intervals and definitions, the known limits, the software and the sha256 of the files.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.jsonio import atomic_write, load_json
from medsight.run import RunFolder, software_versions

FEW_CASES = 30  # a class with fewer test cases than this has a figure that rests on few cases
CALIBRATION_WARNING = 0.05  # expected calibration error above this: probabilities are not frequencies
HF_TASKS = {"classification": ("image-classification", "Image classification"),
            "segmentation": ("image-segmentation", "Image segmentation"),
            "detection": ("object-detection", "Object detection")}
LICENCE_KEYS = ("licence", "license")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_licence(source: str | None) -> tuple[str | None, str | None]:
    """(licence, where it was read) from the data set's own dataset.json, or a Licence: line beside the data."""
    if not source:
        return None, None
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    raw = folder / "dataset.json"
    if raw.is_file():
        try:
            meta = json.loads(raw.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        for key in LICENCE_KEYS:
            if isinstance(meta.get(key), str):
                return meta[key], str(raw)
    for name in ("SOURCE.md", "LICENSE", "LICENCE", "LICENSE.txt", "README.md"):
        notes = folder / name
        if notes.is_file():
            for line in notes.read_text(errors="replace").splitlines():
                head, sep, rest = line.strip().lstrip("-* ").partition(":")
                if sep and head.strip().lower() in LICENCE_KEYS and rest.strip():
                    return rest.strip(), str(notes)
    return None, None


def definitions(metrics: dict[str, Any]) -> dict[str, str]:
    """What each figure means: metrics.json's own 'definitions' block first, then medsight's labels."""
    from medsight.report.html import METRIC_LABELS

    own = metrics.get("definitions") or {}
    out = {}
    for name in metrics.get("metrics", {}):
        if name in own:
            out[name] = own[name] if isinstance(own[name], str) else json.dumps(own[name])
        elif name in METRIC_LABELS:
            out[name] = f"{METRIC_LABELS[name][0]}: {METRIC_LABELS[name][1]}"
    for name, text in own.items():  # what the block defines beyond the figures (decisions, intervals, ...)
        out.setdefault(name, text if isinstance(text, str) else json.dumps(text))
    return out


def figures(metrics: dict[str, Any]) -> list[tuple[str, float, list[float] | None]]:
    """(name, value, 95% interval) of every numeric headline figure."""
    ci = metrics.get("ci95") or {}
    return [(k, float(v), ci.get(k)) for k, v in metrics.get("metrics", {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)]


def known_limits(metrics: dict[str, Any], plan: dict[str, Any], classes: list[str]) -> list[str]:
    """Classes with few cases, poor calibration, wide intervals: what a reader must know before trusting it."""
    limits = []
    for name, entry in (metrics.get("per_class") or {}).items():
        support = entry.get("support") if isinstance(entry, dict) else None
        if isinstance(support, (int, float)) and support < FEW_CASES:
            limits.append(f"class {name!r} has only {int(support)} test cases: its figures rest on few cases")
    counts = plan.get("class_counts")
    if isinstance(counts, list) and classes and len(counts) == len(classes):
        smallest = min(range(len(counts)), key=lambda i: counts[i])
        limits.append(f"the rarest training class is {classes[smallest]!r} ({counts[smallest]} of {sum(counts)} "
                      f"training cases)")
    ece = (metrics.get("metrics") or {}).get("ece")
    if isinstance(ece, (int, float)):
        verdict = ("the predicted probabilities are not reliable frequencies; use the decisions, or recalibrate"
                   if ece > CALIBRATION_WARNING else "the probabilities are close to observed frequencies")
        limits.append(f"expected calibration error {ece:.3f} on the {metrics.get('split')} split: {verdict}")
    wide = [k for k, _, ci in figures(metrics) if ci and None not in ci and ci[1] - ci[0] > 0.2]
    if wide:
        limits.append(f"wide 95% intervals (more than 0.2) for {', '.join(wide)}: the test split is small for them")
    limits.append("evaluated on one split of one data set; performance on other scanners, sites or populations "
                  "is unknown until measured there")
    return limits


def _yaml_header(name: str, task: str, dataset_name: str, split: str, figs: list, licence: str | None) -> str:
    hf_type, hf_name = HF_TASKS.get(task, (task, task))
    results = [{"task": {"type": hf_type, "name": hf_name},
                "dataset": {"name": dataset_name, "type": dataset_name, "split": split},
                "metrics": [{"type": k, "value": round(v, 6),
                             "name": k + (f" (95% CI {ci[0]:.3f} to {ci[1]:.3f})" if ci and None not in ci else "")}
                            for k, v, ci in figs]}]
    lines = ["---", "library_name: medsight", "license: unknown",
             f"tags: {json.dumps(['medical-imaging', task, 'medsight'])}",
             f"datasets: {json.dumps([dataset_name])}",
             f"metrics: {json.dumps([k for k, _, _ in figs])}",
             "model-index:", f"- name: {json.dumps(name)}", f"  results: {json.dumps(results)}"]
    if licence:
        lines.insert(3, f"dataset_licence: {json.dumps(licence)}")
    return "\n".join(lines + ["---", ""])


def _table(rows: list[list[Any]]) -> str:
    out = ["| " + " | ".join(map(str, rows[0])) + " |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
    out += ["| " + " | ".join(str(c).replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def write_card(run_path: str | Path, split: str = "test", out: str | Path | None = None) -> Path:
    """Write MODEL_CARD.md for a trained and evaluated run; returns its path."""
    run = RunFolder(run_path).require_trained()
    metrics_path = run.eval_dir(split) / "metrics.json"
    if not metrics_path.is_file():
        raise MedsightError(run.path, f"has no evaluation of the {split} split; run `medsight evaluate {run.path} --split {split}`")
    config, plan, info = load_json(run.config_path), run.load_plan(), run.load_dataset_info()
    metrics, state = load_json(metrics_path), run.load_state()
    task, classes = info.get("task", config.get("task")), list(info.get("classes") or [])
    source = info.get("source") or config.get("data")
    dataset_name = Path(str(source)).name.split(".")[0] if source else "unknown"
    licence, licence_from = data_licence(source)
    figs = figures(metrics)
    name = run.path.resolve().name
    splits = {k: len(v) for k, v in (info.get("splits") or {}).items()}
    patients = {k: v for k, v in info.items() if "patient" in k.lower()}
    training = state.get("training", {})
    onnx = run.export_dir / "model.onnx"
    versions = {**{f"{k} (trained with)": v for k, v in info.get("versions", {}).items()},
                **{f"{k} (card written with)": v for k, v in software_versions().items()},
                "python": platform.python_version()}

    lines = [_yaml_header(name, task, dataset_name, split, figs, licence), f"# Model card: {name}", ""]
    lines += [f"A {config.get('model')} network trained with medsight for {task}"
              + (f" of {len(classes)} classes ({', '.join(classes)})" if classes else "") + f" on {dataset_name}.", ""]
    lines += ["## Intended use", "",
              f"Research and development: measuring what a {task} model can do on data like {dataset_name}, "
              "comparing methods, and preparing a validation study. **This model is not a medical device.** It has "
              "no regulatory clearance and must not be used to diagnose, treat or triage patients, nor to make "
              "any decision about a person's care.", ""]
    lines += ["## Data", "", _table([["item", "value"], ["source", source], ["format", info.get("format")],
                                     ["licence", f"{licence} (from {licence_from})" if licence else
                                      "not recorded: state the data's licence before sharing this model"],
                                     ["split used", ", ".join(f"{k} {v} cases" for k, v in splits.items())],
                                     ["patients", json.dumps(patients) if patients else
                                      "not recorded (the data set names no patient per case)"],
                                     ["channels", ", ".join(map(str, info.get("channels") or []))]]), ""]
    steps = (plan.get("preprocessing") or {}).get("steps", [])
    lines += ["## Preprocessing", "", "The steps of plan.json, in order (the same code runs in training, "
              "evaluation, prediction, export and serving):", "",
              _table([["step", "enabled", "reason"], *[[s.get("name"), "yes" if s.get("enabled") else "no",
                                                         s.get("reason", "")] for s in steps]]), ""]
    extra_plan = [[k, json.dumps(plan[k])] for k in ("input_size", "patch_size", "spacing", "normalization") if k in plan]
    if extra_plan:
        lines += [_table([["plan entry", "value"], *extra_plan]), ""]
    settings = [[k, json.dumps(config[k])] for k in ("model", "epochs", "minutes", "seed", "fold", "balance",
                                                    "learning_rate", "batch_size", "operating_point", "init", "freeze")
                if k in config and config[k] not in (None, "none")]
    settings += [[f"trained: {k}", json.dumps(v)] for k, v in training.items()]
    if state.get("operating_point"):
        settings.append(["operating point (chosen on val)", json.dumps(state["operating_point"])])
    lines += ["## Training", "", _table([["setting", "value"], *settings]), ""]
    lines += [f"## Figures ({split} split, {metrics.get('num_cases')} cases)", "",
              _table([["figure", "value", "95% CI"], *[[k, f"{v:.4f}", f"{ci[0]:.4f} to {ci[1]:.4f}"
                                                         if ci and None not in ci else "n/a"] for k, v, ci in figs]]), ""]
    if metrics.get("ci_method"):
        lines += [f"Intervals: {metrics['ci_method']}.", ""]
    defs = definitions(metrics)
    if defs:
        lines += ["Definitions:", "", *[f"- **{k}**: {v}" for k, v in defs.items()], ""]
    lines += ["## Known limits", "", *[f"- {limit}" for limit in known_limits(metrics, plan, classes)], ""]
    lines += ["## Software", "", _table([["package", "version"], *[[k, v] for k, v in versions.items()]]), ""]
    files = [["model.safetensors", sha256(run.weights_path)]]
    files.append(["export/model.onnx", sha256(onnx) if onnx.is_file() else "not exported (run `medsight export`)"])
    lines += ["## Files (sha256)", "", _table([["file", "sha256"], *files]), ""]
    text = "\n".join(lines)
    path = Path(out) if out else run.path / "MODEL_CARD.md"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return path
