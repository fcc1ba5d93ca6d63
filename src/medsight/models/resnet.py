"""ResNet-18/34/50 (He et al. 2016) from MONAI, 2D and 3D.

Below 64 px the stem becomes a 3x3 convolution without max pooling, as in MedMNIST's ResNet-18 (28),
so that 28 px images are not reduced to 1 px before the last stage; it keeps stride 1 in 2D and
stride 2 in 3D, where a full-resolution first stage would cost eight times as much.
"""

from __future__ import annotations

import torch.nn as nn
from monai.networks.nets import ResNet

from medsight.models.parts import Classifier
from medsight.models.registry import register_model

RESNET_LAYOUTS = {
    "resnet18": ("basic", [2, 2, 2, 2]),
    "resnet34": ("basic", [3, 4, 6, 3]),
    "resnet50": ("bottleneck", [3, 4, 6, 3]),
}


def build_resnet(name: str, spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28,
                 widen_factor: float = 1.0) -> nn.Module:
    block, layers = RESNET_LAYOUTS[name]
    small = input_size < 64
    # A 3D first stage at full resolution costs 8x a halved one: small volumes still halve in the stem.
    stem_stride = 2 if not small or spatial_dims == 3 else 1
    network = ResNet(
        block=block, layers=layers, block_inplanes=[64, 128, 256, 512], spatial_dims=spatial_dims,
        n_input_channels=in_channels, conv1_t_size=3 if small else 7, conv1_t_stride=stem_stride,
        no_max_pool=small, widen_factor=widen_factor, num_classes=num_classes,
    )
    head, network.fc = network.fc, None  # MONAI's ResNet returns its pooled features when it has no fc
    return Classifier(network, head)


def _register(name: str, description: str, layout: str | None = None, widen_factor: float = 1.0) -> None:
    def builder(spatial_dims: int, in_channels: int, num_classes: int, input_size: int = 28) -> nn.Module:
        return build_resnet(layout or name, spatial_dims, in_channels, num_classes, input_size, widen_factor)

    builder.__doc__ = description
    register_model(name, task="classification", description=description)(builder)


_register("resnet18", "ResNet-18 (MONAI); 3x3 stride-1 stem below 64 px as MedMNIST's ResNet-18 (28)")
_register("resnet34", "ResNet-34 (MONAI); small-input stem below 64 px")
# Half the channels: a quarter of the multiply-adds, for CPUs and small data sets.
_register("resnet18_half", "ResNet-18 at half width (32-256 channels); small-input stem below 64 px",
          layout="resnet18", widen_factor=0.5)
_register("resnet50", "ResNet-50 with bottleneck blocks (MONAI); small-input stem below 64 px")
