"""Synthetic data sets that medsight makes itself (demo and tests; no download)."""
