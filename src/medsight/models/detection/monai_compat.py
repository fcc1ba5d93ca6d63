"""The one place where MONAI's detection code would reach for torchvision, replaced by plain PyTorch.

MONAI's ``BackboneWithFPN`` wraps the ResNet in torchvision's ``IntermediateLayerGetter``,
``resnet_fpn_feature_extractor`` calls torchvision's ``_validate_trainable_layers``, and
``RetinaNetDetector`` checks ``isinstance(matcher, torchvision Matcher)``. (Its box selector is also swapped for one with a faster NMS.) torchvision does not import beside
the CPU build of torch, so: ``ResNetFPN`` runs the ResNet stages itself and feeds MONAI's
``FeaturePyramidNetwork`` (every layer is trained: there are no pretrained weights to freeze), ``IoUMatcher``
is a self-contained threshold matcher, and ``MedsightRetinaNetDetector`` dispatches on it. The detector's
eval forward is also split into ``head`` and ``postprocess`` (see ``dense.py``) so that ONNX can run the head.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import torch
import torch.nn as nn
from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector
from monai.apps.detection.utils.ATSS_matcher import ATSSMatcher
from monai.apps.detection.utils.detector_utils import preprocess_images
from monai.data.box_utils import box_iou
from monai.networks.blocks.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool
from monai.networks.nets import resnet

from medsight.models.detection.boxes import FastBoxSelector
from medsight.models.detection.dense import anchor_images, input_shape_of
from medsight.models.parts import PartList

BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS = -1, -2


class ResNetFPN(nn.Module):
    """MONAI ResNet stages -> MONAI FeaturePyramidNetwork; returns an ordered dict of maps, finest first."""

    def __init__(self, spatial_dims: int, in_channels: int, layers: Sequence[int], widths: Sequence[int],
                 fpn_channels: int, returned_layers: Sequence[int] = (1, 2, 3), stem_stride: int = 2,
                 max_pool: bool = True):
        super().__init__()
        self.body = resnet.ResNet(
            block="basic", layers=list(layers), block_inplanes=list(widths), spatial_dims=spatial_dims,
            n_input_channels=in_channels, conv1_t_size=7 if spatial_dims == 2 else 5, conv1_t_stride=stem_stride,
            no_max_pool=not max_pool, feed_forward=False, norm=("group", {"num_groups": 8}),
        )
        del self.body.avgpool  # only the stages are used
        for unused in range(max(returned_layers) + 1, 5):
            delattr(self.body, f"layer{unused}")
        self.returned_layers = tuple(returned_layers)
        self.fpn = FeaturePyramidNetwork(
            spatial_dims=spatial_dims, in_channels_list=[widths[i - 1] for i in self.returned_layers],
            out_channels=fpn_channels, extra_blocks=LastLevelMaxPool(spatial_dims),
        )
        self.out_channels = fpn_channels
        self.spatial_dims = spatial_dims
        first = stem_stride * (2 if max_pool else 1)
        # stride of each output map relative to the input (the extra max-pool level doubles the last)
        self.strides = [first * 2 ** (i - 1) for i in self.returned_layers] + [first * 2 ** self.returned_layers[-1]]

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        b = self.body
        x = b.act(b.bn1(b.conv1(x)))
        if not b.no_max_pool:
            x = b.maxpool(x)
        stages: OrderedDict[str, torch.Tensor] = OrderedDict()
        for index in range(1, max(self.returned_layers) + 1):
            x = getattr(b, f"layer{index}")(x)
            if index in self.returned_layers:
                stages[str(len(stages))] = x
        return self.fpn(stages)


class IoUMatcher:
    """Each anchor gets the ground-truth box of highest IoU when >= high, -1 below low, -2 in between.

    With ``allow_low_quality_matches`` every ground-truth box also keeps the anchors of its highest IoU, so
    that small objects are never left without a positive anchor (as in Faster R-CNN).
    """

    BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS = BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS

    def __init__(self, high: float, low: float, allow_low_quality_matches: bool = True):
        if high < low:
            raise ValueError(f"the foreground IoU threshold {high} is below the background one {low}")
        self.high, self.low, self.allow_low_quality_matches = high, low, allow_low_quality_matches

    def __call__(self, quality: torch.Tensor) -> torch.Tensor:
        """quality: (num_gt, num_anchors) IoU -> (num_anchors,) matched gt index or a negative code."""
        best, matches = quality.max(dim=0)
        original = matches.clone()
        matches[best < self.low] = BELOW_LOW_THRESHOLD
        matches[(best >= self.low) & (best < self.high)] = BETWEEN_THRESHOLDS
        if self.allow_low_quality_matches:
            best_per_gt = quality.max(dim=1, keepdim=True).values
            gt_index, anchor_index = torch.nonzero((quality == best_per_gt) & (best_per_gt > 0), as_tuple=True)
            matches[anchor_index] = original[anchor_index]
        return matches


class MedsightRetinaNetDetector(RetinaNetDetector):
    """MONAI's RetinaNetDetector with the torchvision Matcher replaced by IoUMatcher (ATSS still works)."""

    @property
    def encoder(self) -> nn.Module:
        return self.network.feature_extractor  # ResNet + FPN

    @property
    def head(self) -> PartList:
        return PartList([self.network.classification_head, self.network.regression_head])

    def set_regular_matcher(self, fg_iou_thresh: float, bg_iou_thresh: float,
                            allow_low_quality_matches: bool = True) -> None:
        self.proposal_matcher = IoUMatcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches)

    def box_limits(self) -> dict[str, Any]:
        """The per-image box limits at inference (infer.box_limits_scaled raises them for large windows)."""
        return {"topk_candidates_per_level": self.box_selector.topk_candidates_per_level,
                "detections_per_img": self.box_selector.detections_per_img}

    def set_box_limits(self, limits: dict[str, Any]) -> None:
        for key, value in limits.items():
            setattr(self.box_selector, key, value)

    def set_box_selector_parameters(self, score_thresh: float = 0.05, topk_candidates_per_level: int = 1000,
                                    nms_thresh: float = 0.5, detections_per_img: int = 300, apply_sigmoid: bool = True) -> None:
        self.box_selector = FastBoxSelector(box_overlap_metric=self.box_overlap_metric, score_thresh=score_thresh,
                                            topk_candidates_per_level=topk_candidates_per_level, nms_thresh=nms_thresh,
                                            detections_per_img=detections_per_img, apply_sigmoid=apply_sigmoid)

    exported_part = "backbone + FPN + per-level classification and box regression heads"

    def forward(self, input_images, targets=None, use_inferer: bool = False):
        """Losses in training; in eval ``postprocess(dense_outputs(images))``, the same decoding the ONNX engine runs."""
        if self.training or use_inferer:
            return super().forward(input_images, targets, use_inferer)
        images, image_sizes = preprocess_images(input_images, self.spatial_dims, self.size_divisible)
        return self.postprocess(self.dense_outputs(images), image_sizes)

    def dense_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Per-level class logits (B, A*K, *S), then per-level box regressions (B, A*2D, *S)."""
        outputs = self.network(images)
        if isinstance(outputs, dict):
            return (*outputs[self.cls_key], *outputs[self.box_reg_key])
        return tuple(outputs)

    def postprocess(self, head_outputs: Sequence[torch.Tensor], image_sizes: Sequence[Sequence[int]]) -> list[dict]:
        """Anchors, box decoding, score threshold, top-k and NMS (MONAI's) on the head's outputs."""
        levels = len(head_outputs) // 2
        logits, regression = list(head_outputs[:levels]), list(head_outputs[levels:])
        input_shape = input_shape_of(logits[0], self.network.feature_extractor.strides[0])
        self.generate_anchors(anchor_images(logits[0], input_shape), {self.cls_key: logits})
        reshaped = {self.cls_key: self._reshape_maps(logits), self.box_reg_key: self._reshape_maps(regression)}
        locations = [m.shape[2:].numel() for m in logits]
        found = self.postprocess_detections(reshaped, self.anchors, [list(s) for s in image_sizes], locations)
        # both families answer {"boxes", "labels", "scores"} (MONAI names the scores "labels_scores")
        return [{"boxes": f[self.target_box_key], "labels": f[self.target_label_key], "scores": f[self.pred_score_key]}
                for f in found]

    def set_balanced_sampler(self, batch_size_per_image: int, positive_fraction: float) -> None:
        raise NotImplementedError("use set_hard_negative_sampler: the balanced sampler lives in torchvision")

    def compute_anchor_matched_idxs(self, anchors, targets, num_anchor_locs_per_level):
        matched = []
        for anchors_per_image, target in zip(anchors, targets):
            boxes = target[self.target_box_key].to(anchors_per_image.device)
            if boxes.numel() == 0:
                matched.append(torch.full((anchors_per_image.size(0),), BELOW_LOW_THRESHOLD, dtype=torch.int64,
                                          device=anchors_per_image.device))
            elif isinstance(self.proposal_matcher, ATSSMatcher):
                _, idx = self.proposal_matcher(boxes, anchors_per_image, num_anchor_locs_per_level,
                                               self.num_anchors_per_loc)
                matched.append(idx)
            else:
                matched.append(self.proposal_matcher(self.box_overlap_metric(boxes, anchors_per_image)))
        return matched


__all__ = ["ResNetFPN", "IoUMatcher", "MedsightRetinaNetDetector", "box_iou"]
