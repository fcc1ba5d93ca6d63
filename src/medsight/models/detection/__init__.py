"""Detection models in the registry: RetinaNet (MONAI) and Faster R-CNN, 2D and 3D, ResNet+FPN backbones.

Every builder takes the plan's ``spatial_dims, in_channels, num_classes, anchor_shapes, feature_map_scales,
stem_stride, max_pool``; the model's ``forward(images, targets)`` returns a dict of losses in training and a
list of ``{"boxes", "labels", "scores"}`` per image in eval, as ``postprocess(dense_outputs(images), image_sizes)``
(``dense.py``: the dense outputs are what ONNX runs); ``encoder`` is the ResNet + FPN, ``head`` the box and class heads. Boxes are corner boxes in array-axis order.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Sequence

import torch.nn as nn

from medsight.models.registry import register_model

# Backbone variants are data: depth, widths and FPN channels.
BACKBONES: dict[str, dict[str, Any]] = {
    "resnet10": {"layers": (1, 1, 1, 1), "widths": (16, 32, 64, 128), "fpn_channels": 32},
    "resnet18": {"layers": (2, 2, 2, 2), "widths": (32, 64, 128, 256), "fpn_channels": 128},
}


def _backbone(variant: str, levels: int, stem_stride: int, max_pool: bool) -> dict[str, Any]:
    return {**BACKBONES[variant], "returned_layers": tuple(range(1, levels)), "stem_stride": stem_stride,
            "max_pool": max_pool}


def build_retinanet(variant: str, spatial_dims: int, in_channels: int, num_classes: int,
                    anchor_shapes: Sequence[Sequence[float]], feature_map_scales: Sequence[float],
                    stem_stride: int = 2, max_pool: bool = True) -> nn.Module:
    """MONAI RetinaNet (ATSS matching, hard-negative sampling, focal-free BCE as MONAI's default)."""
    from monai.apps.detection.networks.retinanet_network import RetinaNet
    from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape

    from medsight.models.detection.faster_rcnn import stride_of
    from medsight.models.detection.monai_compat import MedsightRetinaNetDetector, ResNetFPN

    backbone = _backbone(variant, len(feature_map_scales), stem_stride, max_pool)
    network = RetinaNet(spatial_dims=spatial_dims, num_classes=num_classes, num_anchors=len(anchor_shapes),
                        feature_extractor=ResNetFPN(spatial_dims, in_channels, **backbone),
                        size_divisible=stride_of(len(feature_map_scales), backbone))
    anchors = AnchorGeneratorWithAnchorShape(list(feature_map_scales), [list(s) for s in anchor_shapes])
    detector = MedsightRetinaNetDetector(network, anchors)
    detector.set_atss_matcher(num_candidates=4, center_in_gt=False)
    detector.set_hard_negative_sampler(batch_size_per_image=64, positive_fraction=0.3, pool_size=20, min_neg=16)
    detector.set_box_selector_parameters(score_thresh=0.02, topk_candidates_per_level=300, nms_thresh=0.4,
                                         detections_per_img=100)
    return detector


def build_faster_rcnn(variant: str, spatial_dims: int, in_channels: int, num_classes: int,
                      anchor_shapes: Sequence[Sequence[float]], feature_map_scales: Sequence[float],
                      stem_stride: int = 2, max_pool: bool = True) -> nn.Module:
    from medsight.models.detection.faster_rcnn import FasterRCNN

    backbone = _backbone(variant, len(feature_map_scales), stem_stride, max_pool)
    hidden = 2 * BACKBONES[variant]["fpn_channels"]
    return FasterRCNN(spatial_dims, in_channels, num_classes, anchor_shapes, feature_map_scales, backbone, hidden=hidden)


def _register(name: str, build: Any, variant: str, description: str) -> None:
    register_model(name, task="detection", default_lr=1e-3, description=description)(partial(build, variant))


_register("retinanet", build_retinanet, "resnet10", "RetinaNet (MONAI) on a small ResNet-10 + FPN, 2D or 3D.")
_register("retinanet_resnet18", build_retinanet, "resnet18", "RetinaNet (MONAI) on ResNet-18 + FPN, 2D or 3D.")
_register("faster_rcnn", build_faster_rcnn, "resnet10",
          "Faster R-CNN (RPN, RoI align, box head) on a small ResNet-10 + FPN, 2D or 3D.")
_register("faster_rcnn_resnet18", build_faster_rcnn, "resnet18",
          "Faster R-CNN (RPN, RoI align, box head) on ResNet-18 + FPN, 2D or 3D.")
