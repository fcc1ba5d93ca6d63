"""Sharing a trained run with people who did not train it: a model card (card.py) and a checked archive (pack.py)."""
