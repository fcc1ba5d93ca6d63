"""The classic convolutional classifiers: LeNet-5, AlexNet, VGG-11/16, in 2D and 3D.

They keep their published layer patterns but adapt to small medical inputs (28 px MedMNIST upwards):
pooling stops when the feature map would vanish and an adaptive pool feeds the classifier. The convolutional
stages are the ``encoder``, the fully connected classifier is the ``head``.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from medsight.models.layers import adaptive_avg_pool, batch_norm, conv, max_pool
from medsight.models.registry import register_model


class LeNet5(nn.Module):
    """LeNet-5 (LeCun et al. 1998): two 5x5 conv + pool stages, then 120-84-classes."""

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int):
        super().__init__()
        d = spatial_dims
        self.encoder = nn.Sequential(
            conv(d, in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), max_pool(d, 2),
            conv(d, 6, 16, 5), nn.ReLU(inplace=True), adaptive_avg_pool(d, 5),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5**d, 120), nn.ReLU(inplace=True),
            nn.Linear(120, 84), nn.ReLU(inplace=True), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class AlexNet(nn.Module):
    """AlexNet (Krizhevsky et al. 2012) with a 3x3 stem for small inputs and batch norm for stable training."""

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28, dropout: float = 0.5):
        super().__init__()
        d = spatial_dims
        large = input_size >= 96  # the 11x11 stride-4 stem only makes sense for large images
        stem = conv(d, in_channels, 64, 11, stride=4, padding=2) if large else conv(d, in_channels, 64, 3, padding=1)
        widths = [64, 192, 384, 256, 256]
        self.encoder = nn.Sequential(
            stem, batch_norm(d, 64), nn.ReLU(inplace=True), max_pool(d, 2),
            conv(d, 64, 192, 3, padding=1), batch_norm(d, 192), nn.ReLU(inplace=True), max_pool(d, 2),
            conv(d, 192, 384, 3, padding=1), batch_norm(d, 384), nn.ReLU(inplace=True),
            conv(d, 384, 256, 3, padding=1), batch_norm(d, 256), nn.ReLU(inplace=True),
            conv(d, 256, widths[-1], 3, padding=1), batch_norm(d, 256), nn.ReLU(inplace=True),
            adaptive_avg_pool(d, 3 if d == 2 else 2),
        )
        flat = 256 * (3 if d == 2 else 2) ** d
        self.head = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(flat, 1024), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(1024, 1024), nn.ReLU(inplace=True), nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


VGG_LAYOUTS = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """VGG (Simonyan & Zisserman 2015) with batch norm; pools that would shrink the map below 1 px are skipped."""

    def __init__(self, layout: list, spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28,
                 width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        d = spatial_dims
        layers: list[nn.Module] = []
        channels, size = in_channels, input_size
        for item in layout:
            if item == "M":
                if size >= 2:
                    layers.append(max_pool(d, 2))
                    size //= 2
                continue
            out = max(8, int(item * width))
            layers += [conv(d, channels, out, 3, padding=1), batch_norm(d, out), nn.ReLU(inplace=True)]
            channels = out
        self.encoder = nn.Sequential(*layers, adaptive_avg_pool(d, 1))
        hidden = max(64, int(512 * width))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


@register_model("lenet5", task="classification", default_lr=1e-3)
def lenet5(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
    """LeNet-5: the 1998 digit classifier, a tiny baseline (its adaptive pool takes any input_size)."""
    return LeNet5(spatial_dims, in_channels, num_classes)


@register_model("alexnet", task="classification", default_lr=1e-3)
def alexnet(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
    """AlexNet with batch norm, small-input stem below 96 px."""
    return AlexNet(spatial_dims, in_channels, num_classes, input_size)


@register_model("vgg11", task="classification", default_lr=1e-3)
def vgg11(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
    """VGG-11 with batch norm."""
    return VGG(VGG_LAYOUTS["vgg11"], spatial_dims, in_channels, num_classes, input_size, width=1.0 if spatial_dims == 2 else 0.25)


@register_model("vgg16", task="classification", default_lr=1e-3)
def vgg16(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
    """VGG-16 with batch norm."""
    return VGG(VGG_LAYOUTS["vgg16"], spatial_dims, in_channels, num_classes, input_size, width=1.0 if spatial_dims == 2 else 0.25)
