"""The run folder: the one place a trained model lives, self-contained, and loading a model back from it."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import medsight
from medsight.config import TrainConfig
from medsight.data.steps import enabled_steps
from medsight.errors import MedsightError
from medsight.jsonio import atomic_write_bytes, load_json, save_json
from medsight.packed import run_or_unpacked
from medsight.tasks.registry import get_task


class RunFolder:
    """Paths and readers/writers for RUN/: config, plan, dataset, weights, checkpoint, log, eval, export."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # paths -----------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def plan_path(self) -> Path:
        return self.path / "plan.json"

    @property
    def dataset_path(self) -> Path:
        return self.path / "dataset.json"

    @property
    def weights_path(self) -> Path:
        return self.path / "model.safetensors"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def log_path(self) -> Path:
        return self.path / "log.csv"

    @property
    def state_path(self) -> Path:
        """Post-training state a predictor needs (operating point, post-processing choices)."""
        return self.path / "state.json"

    def eval_dir(self, split: str) -> Path:
        return self.path / "eval" / split

    @property
    def export_dir(self) -> Path:
        return self.path / "export"

    # checks ----------------------------------------------------------------
    def require_trained(self) -> "RunFolder":
        """Fail with one line unless this is a finished run folder (config, plan, dataset and weights)."""
        if not self.path.is_dir():
            raise MedsightError(self.path, "is not a run folder (no such directory)")
        for needed in (self.config_path, self.plan_path, self.dataset_path):
            if not needed.is_file():
                raise MedsightError(self.path, f"is not a run folder (no {needed.name})")
        if not self.weights_path.is_file():
            raise MedsightError(self.path, "has no trained model (no model.safetensors): train it first")
        self.check_versions()
        return self

    def check_versions(self) -> None:
        """Warn when the run was made with other medsight/torch/MONAI versions than the ones loading it."""
        if not self.dataset_path.is_file():
            return
        recorded = load_json(self.dataset_path).get("versions", {})
        current = software_versions()
        differ = [f"{k} {recorded[k]} (now {v})" for k, v in current.items() if k in recorded and recorded[k] != v]
        if differ:
            warnings.warn(f"{self.path}: made with {', '.join(differ)}", stacklevel=2)

    # readers / writers -----------------------------------------------------
    def load_plan(self) -> dict[str, Any]:
        plan = load_json(self.plan_path)
        enabled_steps(plan, self.plan_path)  # a hand-edited step list fails here, naming the file
        return plan

    def save_plan(self, plan: dict[str, Any]) -> None:
        save_json(self.plan_path, plan)

    def load_dataset_info(self) -> dict[str, Any]:
        return load_json(self.dataset_path)

    def save_dataset_info(self, info: dict[str, Any]) -> None:
        save_json(self.dataset_path, {**info, "versions": software_versions()})

    def load_state(self) -> dict[str, Any]:
        return load_json(self.state_path) if self.state_path.is_file() else {}

    def save_state(self, state: dict[str, Any]) -> None:
        save_json(self.state_path, state)

    def load_config(self) -> TrainConfig:
        return TrainConfig.load(self.config_path)

    def save_weights(self, state_dict: dict[str, Any]) -> None:
        save_weights(self.weights_path, state_dict)

    def load_weights(self) -> dict[str, Any]:
        return load_weights(self.weights_path)


def software_versions() -> dict[str, str]:
    import monai
    import torch

    return {"medsight": medsight.__version__, "torch": torch.__version__, "monai": monai.__version__}


def save_weights(path: str | Path, state_dict: dict[str, Any]) -> None:
    """Write tensors as safetensors, atomically (safetensors cannot hold code, so loading is safe)."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    atomic_write_bytes(path, save(tensors))


def load_weights(path: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise MedsightError(path, "file not found") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise MedsightError(path, f"is not a readable safetensors file ({exc})") from None


def load_run(run_path: str | Path, device: str = "cpu") -> tuple[RunFolder, Any, Any]:
    """(run, task, model) from a trained run folder, or a packed one: nothing else is needed."""
    run = RunFolder(run_or_unpacked(run_path)).require_trained()
    config = run.load_config()
    if config.extra.get("pretrain"):
        raise MedsightError(run.path, "is a pre-training run (no task head); use it with `medsight train DATA --init RUN`")
    info = run.load_dataset_info()
    task = get_task(info["task"])(run.load_plan(), info, device)
    task.configure(config, None)
    model = task.build_model(config.model)
    try:
        model.load_state_dict(run.load_weights())
    except RuntimeError as exc:
        raise MedsightError(run.weights_path, f"does not match the model {config.model!r} of this run ({str(exc).splitlines()[0]})") from None
    model.to(device).eval()
    return run, task, model
