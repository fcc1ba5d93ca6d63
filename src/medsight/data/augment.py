"""Augmentation: batched for whole images, per patch for an image with its label map.

Images (classification, pre-training): parameters are drawn first, then applied by a deterministic transform.
Per-sample transforms cost more than a small network's forward pass on 28 px images, so spatial
augmentation is one affine warp per batch through MONAI's AffineTransform (a batched spatial transformer).

Patches with a label map (segmentation): MONAI's dictionary transforms, which move the label with the image
(nearest-neighbour) and leave it out of the intensity changes.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from monai.networks.layers import AffineTransform


def mirror_sets(axes: Sequence[int]) -> list[tuple[int, ...]]:
    """Every subset of the mirror axes (the empty one first): the passes of test-time mirroring, 8 in 3D, 4 in 2D."""
    axes = list(axes)
    return [combo for r in range(len(axes) + 1) for combo in itertools.combinations(axes, r)]


@dataclass(frozen=True)
class AugmentSettings:
    flip_axes: tuple[int, ...] = ()  # spatial axes (0-based) that may be mirrored
    rotate_degrees: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.1  # fraction of the image size
    brightness: float = 0.1  # additive, in normalised intensity units
    contrast: tuple[float, float] = (0.9, 1.1)
    noise: float = 0.0  # std of Gaussian noise, in normalised intensity units
    probability: float = 0.8  # chance that a sample is warped at all

    @classmethod
    def from_plan(cls, plan: dict[str, Any]) -> "AugmentSettings":
        raw = dict(plan.get("augment", {}))
        for key in ("flip_axes", "scale", "contrast"):
            if key in raw:
                raw[key] = tuple(raw[key])
        return cls(**raw)


def rotation_matrices(angles: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """(B, d, d) rotations: one angle per sample in 2D, three (about each axis) in 3D."""
    if spatial_dims == 2:
        cos, sin = torch.cos(angles[:, 0]), torch.sin(angles[:, 0])
        return torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    out = torch.eye(3).repeat(len(angles), 1, 1)
    for axis in range(3):
        cos, sin = torch.cos(angles[:, axis]), torch.sin(angles[:, axis])
        i, j = [a for a in range(3) if a != axis]
        rot = torch.eye(3).repeat(len(angles), 1, 1)
        rot[:, i, i], rot[:, i, j], rot[:, j, i], rot[:, j, j] = cos, -sin, sin, cos
        out = rot @ out
    return out


class BatchAugment:
    """Random flips, affine warps and intensity changes for a (B, C, *spatial) batch."""

    def __init__(self, settings: AugmentSettings, spatial_dims: int):
        self.settings = settings
        self.spatial_dims = spatial_dims
        self.warp = AffineTransform(normalized=True, mode="bilinear", padding_mode="border", align_corners=False)

    def draw(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw every random parameter for a batch from generator.

        Never torch's global RNG: DDP ranks share its seed, and would all draw the same warps.
        """
        if not isinstance(generator, torch.Generator):
            raise TypeError("BatchAugment.draw needs its own torch.Generator (one per rank and epoch)")
        s, d = self.settings, self.spatial_dims

        def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
            return low + (high - low) * torch.rand(*shape, generator=generator)

        n_angles = 1 if d == 2 else 3
        limit = math.radians(s.rotate_degrees)
        return {
            "flip": torch.rand(batch_size, max(1, len(s.flip_axes)), generator=generator) < 0.5,
            "warp": torch.rand(batch_size, generator=generator) < s.probability,
            "angles": uniform(-limit, limit, batch_size, n_angles),
            "scale": uniform(s.scale[0], s.scale[1], batch_size, 1),
            "shift": uniform(-2 * s.translate, 2 * s.translate, batch_size, d),  # normalised coords span 2
            "brightness": uniform(-s.brightness, s.brightness, batch_size),
            "contrast": uniform(s.contrast[0], s.contrast[1], batch_size),
            "noise_seed": torch.randint(0, 2**31 - 1, (1,), generator=generator),
        }

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Deterministic given params."""
        s, d = self.settings, self.spatial_dims
        x = images
        for k, axis in enumerate(s.flip_axes):
            mask = params["flip"][:, k]
            if mask.any():
                x = torch.where(mask.view(-1, *[1] * (x.ndim - 1)), x.flip(2 + axis), x)
        warp = params["warp"]
        if warp.any():
            matrix = rotation_matrices(params["angles"], d) * params["scale"].view(-1, 1, 1)
            identity = torch.eye(d).expand_as(matrix)
            matrix = torch.where(warp.view(-1, 1, 1), matrix, identity)
            shift = torch.where(warp.view(-1, 1), params["shift"], torch.zeros_like(params["shift"]))
            theta = torch.cat([matrix, shift.unsqueeze(-1)], dim=-1).to(x)
            x = self.warp(x, theta)
        shape = (-1,) + (1,) * (x.ndim - 1)
        mean = x.mean(dim=tuple(range(1, x.ndim)), keepdim=True)
        x = (x - mean) * params["contrast"].view(shape).to(x) + mean + params["brightness"].view(shape).to(x)
        if s.noise > 0:
            gen = torch.Generator().manual_seed(int(params["noise_seed"]))
            x = x + s.noise * torch.randn(x.shape, generator=gen).to(x)
        return x

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, self.draw(len(images), generator))


def build_augment(plan: dict[str, Any]):
    """MONAI dictionary transforms for ("image", "label"): affine, flips, noise, blur, intensity scale, gamma."""
    # monai.transforms takes seconds to import: only the tasks that cut patches pay for it
    from monai.transforms import (Compose, RandAdjustContrastd, RandAffined, RandFlipd, RandGaussianNoised,
                                  RandGaussianSmoothd, RandScaleIntensityd)

    a, dims = plan["augment"], plan["spatial_dims"]
    angle = math.radians(a["rotate_degrees"])
    rotate = (angle,) if dims == 2 else (angle, angle, angle)
    low, high = a["scale"]
    transforms = [
        RandAffined(("image", "label"), prob=a["affine_probability"], rotate_range=rotate,
                    scale_range=[(low - 1, high - 1)] * dims, mode=("bilinear", "nearest"), padding_mode="zeros"),
        RandGaussianNoised("image", prob=a["noise_probability"], std=a["noise_std"]),
        RandGaussianSmoothd("image", prob=a["blur_probability"], sigma_x=(0.5, 1.0), sigma_y=(0.5, 1.0), sigma_z=(0.5, 1.0)),
        RandScaleIntensityd("image", factors=a["intensity_scale"], prob=a["intensity_probability"]),
        RandAdjustContrastd("image", prob=a["gamma_probability"], gamma=tuple(a["gamma"])),
    ]
    transforms += [RandFlipd(("image", "label"), prob=0.5, spatial_axis=axis) for axis in a["flip_axes"]]
    return Compose(transforms)
