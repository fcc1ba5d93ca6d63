"""Reading data sets and images (detect.py finds the format of a folder or file)."""
