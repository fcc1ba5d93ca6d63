"""The model registry: ``create_model``, ``list_models``, ``register_model``."""

from medsight.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
