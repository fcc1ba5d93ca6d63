"""Efficient modern classifiers: EfficientNet-B0 (MONAI) and a small ConvNeXt, 2D and 3D."""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.nets.efficientnet import EfficientNet

from medsight.models.layers import conv
from medsight.models.parts import Classifier
from medsight.models.registry import register_model


class ChannelsLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a (B, C, *spatial) tensor."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=1e-6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm, 4x inverted bottleneck MLP, layer scale, residual (Liu et al. 2022)."""

    def __init__(self, dims: int, channels: int, kernel: int = 7):
        super().__init__()
        self.dwconv = conv(dims, channels, channels, kernel, padding=kernel // 2, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(channels, 4 * channels), nn.GELU(), nn.Linear(4 * channels, channels))
        self.gamma = nn.Parameter(torch.full((channels,), 1e-2))  # larger than 1e-6: faster from scratch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dwconv(x).movedim(1, -1)
        y = self.mlp(self.norm(y)) * self.gamma
        return x + y.movedim(-1, 1)


class ConvNeXtEncoder(nn.Module):
    """A small ConvNeXt up to its pooled, normalised features; the patchify stem strides 1 or 2 for small images."""

    def __init__(self, spatial_dims: int, in_channels: int, input_size: int = 28,
                 depths=(2, 2, 4, 2), widths=(32, 64, 128, 256), kernel: int = 7):
        super().__init__()
        d = spatial_dims
        stem_stride = 1 if input_size < 48 else 2 if input_size < 128 else 4
        if d == 3:  # a 3D first stage at full resolution costs 8x a halved one, for little gain at 28^3
            stem_stride = min(4, stem_stride * 2)
        kernel = min(kernel, 5) if d == 3 else kernel  # 7^3 depthwise kernels cost much on CPU for little gain
        self.stem = nn.Sequential(conv(d, in_channels, widths[0], stem_stride if stem_stride > 1 else 3,
                                       stride=stem_stride, padding=0 if stem_stride > 1 else 1),
                                  ChannelsLayerNorm(widths[0]))
        stages: list[nn.Module] = []
        for i, (depth, width) in enumerate(zip(depths, widths)):
            if i > 0:
                stages.append(nn.Sequential(ChannelsLayerNorm(widths[i - 1]), conv(d, widths[i - 1], width, 2, stride=2)))
            stages.extend(ConvNeXtBlock(d, width, kernel) for _ in range(depth))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(widths[-1], eps=1e-6)
        self.out_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        x = x.flatten(2).mean(-1)  # global average pool
        return self.norm(x)


@register_model("convnext_small_input", task="classification", default_lr=2e-3)
def convnext_small_input(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
    """ConvNeXt with widths 32-256 (about 2.6M parameters in 2D), stem adapted to small images."""
    encoder = ConvNeXtEncoder(spatial_dims, in_channels, input_size)
    return Classifier(encoder, nn.Linear(encoder.out_features, num_classes))


# EfficientNet-B0's stages (Tan & Le 2019) in MONAI's block notation.
EFFICIENTNET_B0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


@register_model("efficientnet_b0", task="classification", default_lr=2e-3)
def efficientnet_b0(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 224) -> nn.Module:
    """EfficientNet-B0 (MONAI), from scratch; below 64 px the second stage keeps full resolution."""
    blocks = list(EFFICIENTNET_B0_BLOCKS)
    if input_size < 64:
        blocks[1] = blocks[1].replace("_s22_", "_s11_")
    network = EfficientNet(blocks, spatial_dims=spatial_dims, in_channels=in_channels, num_classes=num_classes,
                           image_size=input_size)
    head, network._fc = network._fc, nn.Identity()  # MONAI's own classifier, initialised as MONAI does
    return Classifier(network, head)
