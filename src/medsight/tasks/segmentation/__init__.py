"""The segmentation task."""
