"""Segmentation networks (MONAI): nnU-Net's U-Net (DynUNet) at three widths and MONAI's residual UNet.

Builders take the plan's topology: ``kernel_sizes`` and ``strides`` per resolution level (the first stride is 1),
as nnU-Net's planner derives them from the patch size and spacing. DynUNet with deep supervision returns, in
training mode, a (B, 1 + heads, C, *spatial) stack (every head upsampled to full size) and in eval mode the
main output only, so inference and export never see the extra heads.
"""

from __future__ import annotations

from typing import Sequence

import torch.nn as nn
from monai.networks.layers.simplelayers import SkipConnection
from monai.networks.nets import DynUNet, UNet

from medsight.models.parts import PartList
from medsight.models.registry import register_model

# (base filters, cap): nnU-Net uses 32 doubling to 320 (3D) / 512 (2D); the lighter variants suit a CPU
DYNUNET_WIDTHS = {"dynunet": (32, 320), "dynunet_lite": (16, 128), "dynunet_tiny": (8, 64)}
DEEP_SUPERVISION_HEADS = 2


class DynUNetWeights(DynUNet):
    """DynUNet whose state dict lists each weight once.

    DynUNet reaches the same modules through ``skip_layers`` and through ``input_block``/``downsamples``/...,
    so its plain state dict holds every tensor twice, which safetensors refuses; the shared copies are left out
    of saving and filled through their other name when loading.
    """

    SHARED = "skip_layers."

    def state_dict(self, *args, destination=None, prefix: str = "", keep_vars: bool = False):
        full = super().state_dict(*args, destination=destination, prefix=prefix, keep_vars=keep_vars)
        for key in [k for k in full if k.startswith(prefix + self.SHARED)]:
            del full[key]
        return full

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        result = super().load_state_dict(state_dict, strict=False, assign=assign)
        missing = [k for k in result.missing_keys if not k.startswith(self.SHARED)]
        if strict and (missing or result.unexpected_keys):
            raise RuntimeError(f"Error(s) in loading state_dict for DynUNet: missing {missing[:5]}, "
                               f"unexpected {result.unexpected_keys[:5]}")
        return result

    # the parts (models/parts.py): input block, downsampling stages and bottleneck; upsampling; output convolutions
    @property
    def encoder(self) -> PartList:
        return PartList([self.input_block, *self.downsamples, self.bottleneck])

    @property
    def decoder(self) -> PartList:
        return PartList(self.upsamples)

    @property
    def head(self) -> PartList:
        return PartList([self.output_block, *self.deep_supervision_heads])


class UNetParts(UNet):
    """MONAI's residual UNet with its parts named; it nests (down, SkipConnection(next level), up) per level."""

    def _levels(self) -> tuple[list[nn.Module], nn.Module, list[nn.Module]]:
        downs, ups, level = [], [], self.model
        while isinstance(level, nn.Sequential) and len(level) == 3 and isinstance(level[1], SkipConnection):
            downs.append(level[0])
            ups.append(level[2])
            level = level[1].submodule
        return downs, level, ups  # the innermost level is the bottom block

    @property
    def encoder(self) -> PartList:
        downs, bottom, _ = self._levels()
        return PartList([*downs, bottom])

    @property
    def decoder(self) -> PartList:
        return PartList(self._levels()[2][1:])

    @property
    def head(self) -> PartList:
        return PartList(self._levels()[2][:1])  # the top up block ends in the class convolution


def default_topology(spatial_dims: int, levels: int = 4) -> tuple[list[list[int]], list[list[int]]]:
    """3x3(x3) kernels and stride-2 pooling at every level but the first: when a plan gives none."""
    kernels = [[3] * spatial_dims for _ in range(levels)]
    strides = [[1] * spatial_dims] + [[2] * spatial_dims for _ in range(levels - 1)]
    return kernels, strides


def build_dynunet(spatial_dims: int, in_channels: int, num_classes: int, kernel_sizes: Sequence[Sequence[int]] | None,
                  strides: Sequence[Sequence[int]] | None, base: int, cap: int, deep_supervision: bool = True) -> nn.Module:
    if kernel_sizes is None or strides is None:
        kernel_sizes, strides = default_topology(spatial_dims)
    levels = len(strides)
    filters = [min(base * 2**i, cap) for i in range(levels)]
    heads = min(DEEP_SUPERVISION_HEADS, levels - 2)
    return DynUNetWeights(spatial_dims, in_channels, num_classes, kernel_size=[list(k) for k in kernel_sizes],
                   strides=[list(s) for s in strides], upsample_kernel_size=[list(s) for s in strides[1:]],
                   filters=filters, norm_name=("INSTANCE", {"affine": True}),
                   deep_supervision=deep_supervision and heads > 0, deep_supr_num=max(1, heads), res_block=False)


def _register_dynunet(name: str, description: str) -> None:
    base, cap = DYNUNET_WIDTHS[name]

    def builder(spatial_dims: int, in_channels: int, num_classes: int, kernel_sizes=None, strides=None,
                deep_supervision: bool = True) -> nn.Module:
        return build_dynunet(spatial_dims, in_channels, num_classes, kernel_sizes, strides, base, cap, deep_supervision)

    builder.__doc__ = description
    register_model(name, task="segmentation", description=description, default_lr=1e-3)(builder)


_register_dynunet("dynunet", "nnU-Net's U-Net (MONAI DynUNet), 32-320 filters, deep supervision")
_register_dynunet("dynunet_lite", "DynUNet with 16-128 filters and deep supervision: half of nnU-Net's width, capped lower")
_register_dynunet("dynunet_tiny", "DynUNet with 8-64 filters and deep supervision: a quarter of nnU-Net's width")


@register_model("unet", task="segmentation", description="MONAI residual UNet, 16-256 channels, stride-2 pooling")
def build_unet(spatial_dims: int, in_channels: int, num_classes: int, kernel_sizes=None, strides=None,
               deep_supervision: bool = False) -> nn.Module:
    """MONAI residual UNet; as many stride-2 levels as the plan's topology pools on every axis.

    It has 3x3(x3) kernels and one output whatever the plan's ``kernel_sizes`` and ``deep_supervision`` say
    (those shape DynUNet); only the pooling of ``strides`` is followed.
    """
    levels = len(strides) if strides is not None else 4
    if strides is not None:  # UNet pools all axes together: stop at the first level that skips an axis
        levels = 1 + next((i for i, s in enumerate(strides[1:]) if min(s) < 2), levels - 1)
    channels = [min(16 * 2**i, 256) for i in range(max(2, levels))]
    return UNetParts(spatial_dims, in_channels, num_classes, channels=channels, strides=[2] * (len(channels) - 1),
                num_res_units=2, norm="INSTANCE")
