"""`medsight pack RUN`: one zip archive of what predict, serve and train --init need, checked when opened.

manifest.json in the archive lists every file with its sha256, its size and where it belongs in a run
folder; opening it is medsight.packed's work (every sha256 checked first). ``--monai-bundle`` lays the same files out
as a MONAI bundle (configs/metadata.json, models/, docs/README.md); medsight's own files stay beside them
under configs/medsight/, so medsight opens either layout the same way.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from medsight.errors import MedsightError
from medsight.packed import FORMAT, MANIFEST, sha256_bytes
from medsight.run import RunFolder

# run-folder files, by where they sit in the run; the weights and config are required, the others when present
REQUIRED = ("config.json", "plan.json", "dataset.json", "model.safetensors")
OPTIONAL = ("state.json", "log.csv", "init.json", "MODEL_CARD.md", "export/model.onnx", "export/export.json")
BUNDLE_PLACES = {"model.safetensors": "models/model.safetensors", "export/model.onnx": "models/model.onnx",
                 "MODEL_CARD.md": "docs/README.md"}
def run_files(run: RunFolder) -> list[str]:
    """The run-relative paths that go into the archive (the evaluations' metrics.json too: serve shows them)."""
    for name in REQUIRED:
        if not (run.path / name).is_file():
            raise MedsightError(run.path, f"cannot be packed: no {name}")
    found = list(REQUIRED) + [name for name in OPTIONAL if (run.path / name).is_file()]
    found += sorted(str(p.relative_to(run.path).as_posix()) for p in run.path.glob("eval/*/metrics.json"))
    return found


def bundle_metadata(run: RunFolder) -> dict[str, Any]:
    """configs/metadata.json of a MONAI bundle, filled from the run (what maps; the rest is left out)."""
    from medsight.jsonio import load_json

    info, plan, config = run.load_dataset_info(), run.load_plan(), load_json(run.config_path)
    versions = info.get("versions", {})
    spatial = plan.get("input_size") or plan.get("patch_size") or []
    channels = plan.get("in_channels") or len(info.get("channels") or [1])
    metrics = {}
    for path in sorted(run.path.glob("eval/*/metrics.json")):
        numbers = {k: v for k, v in load_json(path).get("metrics", {}).items() if isinstance(v, (int, float))}
        metrics.update({f"{path.parent.name}_{k}": v for k, v in numbers.items()})
    classes = list(info.get("classes") or [])
    return {
        "version": "0.1.0", "changelog": {"0.1.0": f"packed from the medsight run {run.path.resolve().name}"},
        "monai_version": versions.get("monai"), "pytorch_version": versions.get("torch"),
        "required_packages_version": {"medsight": versions.get("medsight")},
        "name": run.path.resolve().name, "task": f"{info.get('task')} with {config.get('model')}",
        "description": "A medsight run; load it with medsight (predict, serve, train --init). Not a medical device.",
        "authors": "", "copyright": "", "data_source": str(info.get("source", "")),
        "data_type": str(info.get("format", "")), "intended_use": "Research only; not a medical device.",
        "eval_metrics": metrics, "label_classes": {str(i): name for i, name in enumerate(classes)},
        "network_data_format": {
            "inputs": {"image": {"type": "image", "format": "magnitude", "num_channels": int(channels),
                                 "spatial_shape": list(spatial), "dtype": "float32", "is_patch_data": False,
                                 "channel_def": {str(i): str(c) for i, c in enumerate(info.get("channels") or [])}}},
            "outputs": {"pred": {"type": "probabilities" if info.get("task") == "classification" else "image",
                                 "num_channels": len(classes) or None, "dtype": "float32"}},
        },
    }


def pack_run(run_path: str | Path, out: str | Path | None = None, monai_bundle: bool = False) -> Path:
    """Write the archive (default RUN.medsight.zip beside the run folder); returns its path."""
    run = RunFolder(run_path).require_trained()
    if not (run.path / "MODEL_CARD.md").is_file() and run.eval_dir("test").joinpath("metrics.json").is_file():
        from medsight.sharing.card import write_card

        write_card(run.path)  # a packed model travels with its card
    out = Path(out) if out else run.path.parent / f"{run.path.resolve().name}.medsight.zip"
    entries = {}
    members = []
    for rel in run_files(run):
        place = BUNDLE_PLACES.get(rel, f"configs/medsight/{rel}") if monai_bundle else rel
        data = (run.path / rel).read_bytes()
        entries[place] = {"run_path": rel, "sha256": sha256_bytes(data), "bytes": len(data)}
        members.append((place, data))
    if monai_bundle:
        data = json.dumps(bundle_metadata(run), indent=2).encode()
        entries["configs/metadata.json"] = {"run_path": None, "sha256": sha256_bytes(data), "bytes": len(data)}
        members.append(("configs/metadata.json", data))
    manifest = {"format": FORMAT, "version": 1, "run": run.path.resolve().name,
                "layout": "monai-bundle" if monai_bundle else "run", "files": entries}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(MANIFEST, json.dumps(manifest, indent=2))
            for place, data in members:
                archive.writestr(place, data)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return out
