"""Models that expose their parts, as segmentation_models_pytorch and timm do.

Every registry model has an ``encoder`` (the part pre-training learns, ``--init`` carries over and
``--freeze encoder`` keeps fixed) and a ``head`` (task-specific: the classifier, the output convolutions or
the box and class heads); U-Nets have a ``decoder`` between them. Freezing and renaming use these modules,
never patterns over parameter names.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from medsight.errors import MedsightError

PARTS = ("encoder", "decoder", "head")


class Classifier(nn.Module):
    """An encoder that maps an image to features, then a head that maps the features to class logits."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.head = head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def part(model: nn.Module, name: str) -> nn.Module:
    """The model's encoder, decoder or head; a MedsightError when the model does not have it."""
    module = getattr(model, name, None)
    if not isinstance(module, nn.Module):
        raise MedsightError(None, f"{type(model).__name__} has no {name} (a registry model exposes "
                                  f"{', '.join(PARTS[::2])} and, for U-Nets, a decoder)")
    return module


def part_prefixes(model: nn.Module, name: str) -> list[str]:
    """Every path ("encoder.", "network.feature_extractor.", ...) under which the part's modules sit in model."""
    wanted = {id(m) for m in _leaves(part(model, name))}
    return [f"{path}." for path, module in model.named_modules(remove_duplicate=False)
            if id(module) in wanted and path]


def in_part(key: str, prefixes: list[str]) -> bool:
    return any(key.startswith(prefix) for prefix in prefixes)


def part_keys(model: nn.Module, name: str) -> list[str]:
    """State-dict keys (parameters and buffers) of one part of the model."""
    prefixes = part_prefixes(model, name)
    return [key for key in model.state_dict() if in_part(key, prefixes)]


def part_parameter_names(model: nn.Module, name: str) -> list[str]:
    prefixes = part_prefixes(model, name)
    return [key for key, _ in model.named_parameters() if in_part(key, prefixes)]


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The modules a part is made of: itself, or, for a list gathered from a network's own modules, its items."""
    if isinstance(module, PartList):
        return list(module)
    return [module]


class PartList(nn.ModuleList):
    """A part made of modules that sit in different places of a network (a U-Net's down path, say).

    Built on demand by a property, it is never registered in the network, so the network's state dict and
    parameter names are MONAI's own.
    """
