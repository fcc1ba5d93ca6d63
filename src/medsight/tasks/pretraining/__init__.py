"""The pretraining task."""
