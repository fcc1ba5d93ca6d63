"""medsight: deep learning on medical images, from raw files to a deployable model."""

__version__ = "0.1.0"

from medsight.errors import MedsightError  # noqa: E402  (cheap: no heavy imports)

__all__ = ["MedsightError", "__version__"]
