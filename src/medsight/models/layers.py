"""Dimension-generic layer constructors, so one class serves 2D and 3D."""

from __future__ import annotations

import torch.nn as nn
from monai.networks.layers.factories import Conv, Norm, Pool


def conv(dims: int, *args, **kwargs) -> nn.Module:
    return Conv[Conv.CONV, dims](*args, **kwargs)


def batch_norm(dims: int, channels: int) -> nn.Module:
    return Norm[Norm.BATCH, dims](channels)


def max_pool(dims: int, *args, **kwargs) -> nn.Module:
    return Pool[Pool.MAX, dims](*args, **kwargs)


def avg_pool(dims: int, *args, **kwargs) -> nn.Module:
    return Pool[Pool.AVG, dims](*args, **kwargs)


def adaptive_avg_pool(dims: int, size: int) -> nn.Module:
    return Pool[Pool.ADAPTIVEAVG, dims](size)
