"""RoI align for 2D and 3D feature maps in plain PyTorch (bilinear / trilinear sampling with grid_sample).

Matches torchvision's ``roi_align(..., aligned=True)``: a box [a0, b0, a1, b1] (array-axis order, continuous
coordinates where pixel i covers [i, i + 1)) is scaled by ``spatial_scale``, split into ``output_size`` bins
per axis, each bin sampled at ``sampling_ratio`` evenly spaced points per axis, and the samples averaged.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F


def roi_align(features: torch.Tensor, boxes: torch.Tensor, batch_index: torch.Tensor,
              output_size: Sequence[int], spatial_scale: float, sampling_ratio: int = 2) -> torch.Tensor:
    """features (B, C, *S), boxes (K, 2*D), batch_index (K,) -> (K, C, *output_size)."""
    dims = features.dim() - 2
    num_rois = boxes.shape[0]
    out_size = list(output_size)
    if num_rois == 0:
        return features.new_zeros((0, features.shape[1], *out_size))
    shape = torch.tensor(features.shape[2:], dtype=features.dtype, device=features.device)
    low = boxes[:, :dims] * spatial_scale
    high = boxes[:, dims:] * spatial_scale
    axes = []
    for d in range(dims):
        n = out_size[d] * sampling_ratio
        # sample centres of n equal sub-bins, in feature-map continuous coordinates
        t = (torch.arange(n, dtype=features.dtype, device=features.device) + 0.5) / n
        coords = low[:, d:d + 1] + t[None, :] * (high[:, d:d + 1] - low[:, d:d + 1])
        axes.append(coords * 2.0 / shape[d] - 1.0)  # align_corners=False normalisation
    # grid_sample wants the last grid dimension in reversed axis order (x = last array axis)
    mesh = torch.meshgrid(*[torch.arange(a.shape[1], device=features.device) for a in axes], indexing="ij")
    grid = torch.stack([axes[d][:, mesh[d]] for d in reversed(range(dims))], dim=-1)  # (K, *n, D)
    # one grid_sample per image with all of its RoIs stacked along the first sampled axis: indexing
    # features[batch_index] instead would copy the whole feature map once per RoI. The pooling windows
    # (sampling_ratio samples per axis) never straddle two stacked RoIs, so the stack is pooled as it is.
    samples = list(grid.shape[1:-1])
    pool = F.avg_pool2d if dims == 2 else F.avg_pool3d
    pooled = features.new_empty((num_rois, features.shape[1], *out_size))
    for image in torch.unique(batch_index).tolist():
        rois = torch.where(batch_index == image)[0]
        stacked = grid[rois].reshape(1, len(rois) * samples[0], *samples[1:], dims)
        sampled = F.grid_sample(features[image:image + 1], stacked, mode="bilinear", padding_mode="zeros",
                                align_corners=False)  # (1, C, K * n0, n1, ...)
        out = pool(sampled, kernel_size=sampling_ratio)  # (1, C, K * out0, out1, ...)
        pooled[rois] = out.view(features.shape[1], len(rois), *out_size).transpose(0, 1)
    return pooled
