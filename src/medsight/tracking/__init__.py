"""Experiment tracking, off by default and offline: MLflow (a local file store or a self-hosted server)
and TensorBoard event files, fed by the training loop's callbacks, by `evaluate` and by `export`.

``train --track mlflow:URI`` / ``--track tensorboard:DIR`` record in RUN/tracking.json where the run is
tracked (and MLflow's run id), so `--resume`, `evaluate` and `export` add to the same tracking run. The
packages are optional (``pip install 'medsight[tracking]'``) and imported only when a run is tracked.
"""

from medsight.tracking.record import (
    TRACKING_FILE, TrackSpec, after_evaluate, after_export, open_trackers, parse_track,
)

__all__ = ["TRACKING_FILE", "TrackSpec", "after_evaluate", "after_export", "open_trackers", "parse_track"]
