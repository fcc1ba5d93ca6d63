"""Tasks: classification, segmentation, detection (see base.Task)."""
