"""The detection task."""
