"""TensorBoard: scalars per epoch and the run's settings as text, in DIR/<run folder name>/ event files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from medsight.errors import MedsightError
from medsight.tracking.base import Tracker


class TensorboardTracker(Tracker):
    """Event files under DIR/<run name>, so runs tracked into one DIR appear side by side."""

    def __init__(self, entry: dict[str, Any], run_path: Path):
        super().__init__(entry, run_path)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MedsightError(None, "--track tensorboard needs TensorBoard: pip install 'medsight[tracking]'") from None
        self.entry.setdefault("log_dir", str(Path(entry["target"]) / Path(run_path).resolve().name))
        self.writer = SummaryWriter(log_dir=self.entry["log_dir"])

    def log_params(self, params: dict[str, str]) -> None:
        table = "\n".join(f"| {k} | {v.replace('|', '/')} |" for k, v in params.items())
        self.writer.add_text("settings", "| setting | value |\n| --- | --- |\n" + table, 0)

    def log_metrics(self, figures: dict[str, float], step: int) -> None:
        for name, value in figures.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def log_files(self, paths: Iterable[Path], folder: str) -> None:
        """TensorBoard keeps no files: JSON ones are shown as text, the others are named."""
        for path in paths:
            path = Path(path)
            if not path.is_file():
                continue
            tag = f"{folder}/{path.name}" if folder else path.name
            if path.suffix == ".json":
                self.writer.add_text(tag, "```\n" + json.dumps(json.loads(path.read_text(encoding="utf-8")), indent=1)[:20000] + "\n```", 0)
            else:
                self.writer.add_text(tag, str(path.resolve()), 0)
        self.writer.flush()

    def close(self, status: str = "FINISHED") -> None:
        self.writer.close()
