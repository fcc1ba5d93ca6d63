"""Faster R-CNN in 2D and 3D from MONAI's detection parts: anchors, box coder, matching, sampling, NMS.

ResNet+FPN features -> region proposal network (objectness and deltas per anchor, MONAI anchors and box
coder, IoU matching, MONAI hard-negative sampling) -> top proposals after NMS -> RoI align (plain PyTorch)
on the FPN level that suits each proposal's size -> two fully connected layers -> class scores and
class-specific box deltas. Labels are 0-based foreground classes outside; 0 is background inside.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.apps.detection.utils.anchor_utils import AnchorGeneratorWithAnchorShape
from monai.apps.detection.utils.box_coder import BoxCoder
from monai.apps.detection.utils.hard_negative_sampler import HardNegativeSampler
from monai.data.box_utils import box_iou, clip_boxes_to_image
from monai.networks.layers.factories import Conv

from medsight.models.detection.boxes import nms
from medsight.models.detection.dense import anchor_images, input_shape_of
from medsight.models.detection.monai_compat import IoUMatcher, ResNetFPN
from medsight.models.detection.roi_align import roi_align
from medsight.models.parts import PartList


def flatten_maps(maps: Sequence[torch.Tensor], per_anchor: int) -> torch.Tensor:
    """(B, A*K, *S) maps -> (B, sum(S*A), K), in the order MONAI's anchor generator lists anchors."""
    out = []
    for m in maps:
        b, spatial = m.shape[0], m.shape[2:]
        a = m.shape[1] // per_anchor
        m = m.view(b, a, per_anchor, *spatial)
        m = m.permute(0, *range(3, 3 + len(spatial)), 1, 2)
        out.append(m.reshape(b, -1, per_anchor))
    return torch.cat(out, dim=1)


class RPNHead(nn.Module):
    """A 3x3 convolution shared by the levels, then objectness and box deltas per anchor."""

    def __init__(self, spatial_dims: int, channels: int, num_anchors: int):
        super().__init__()
        conv = Conv[Conv.CONV, spatial_dims]
        self.conv = conv(channels, channels, kernel_size=3, padding=1)
        self.objectness = conv(channels, num_anchors, kernel_size=1)
        self.deltas = conv(channels, num_anchors * 2 * spatial_dims, kernel_size=1)
        for layer in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        hidden = [F.relu(self.conv(m)) for m in maps]
        return [self.objectness(h) for h in hidden], [self.deltas(h) for h in hidden]


class BoxHead(nn.Module):
    """Two fully connected layers on the pooled RoI, then class logits and class-specific deltas."""

    def __init__(self, in_features: int, hidden: int, num_classes: int, spatial_dims: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.cls = nn.Linear(hidden, num_classes + 1)
        self.deltas = nn.Linear(hidden, num_classes * 2 * spatial_dims)
        nn.init.normal_(self.cls.weight, std=0.01)
        nn.init.normal_(self.deltas.weight, std=0.001)
        nn.init.zeros_(self.cls.bias)
        nn.init.zeros_(self.deltas.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.fc(pooled)
        return self.cls(h), self.deltas(h)


class FasterRCNN(nn.Module):
    """Two-stage detector; ``forward(images, targets)`` gives losses in training, detections in eval."""

    def __init__(self, spatial_dims: int, in_channels: int, num_classes: int, anchor_shapes: Sequence[Sequence[float]],
                 feature_map_scales: Sequence[float], backbone: dict[str, Any], roi_size: int | None = None,
                 hidden: int = 256, pre_nms_train: int = 500, post_nms_train: int = 300, pre_nms_test: int = 500,
                 post_nms_test: int = 150, rois_per_image: int = 128, score_thresh: float = 0.02,
                 nms_thresh: float = 0.4, detections_per_image: int = 100):
        super().__init__()
        self.spatial_dims, self.num_classes = spatial_dims, num_classes
        self.feature_extractor = ResNetFPN(spatial_dims, in_channels, **backbone)
        channels = self.feature_extractor.out_channels
        self.anchor_generator = AnchorGeneratorWithAnchorShape(list(feature_map_scales), [list(s) for s in anchor_shapes])
        self.num_anchors = len(anchor_shapes)
        self.num_levels = len(feature_map_scales)
        self.rpn = RPNHead(spatial_dims, channels, self.num_anchors)
        self.roi_size = roi_size or (7 if spatial_dims == 2 else 4)
        self.box_head = BoxHead(channels * self.roi_size**spatial_dims, hidden, num_classes, spatial_dims)
        self.rpn_coder = BoxCoder(weights=(1.0,) * 2 * spatial_dims)
        self.roi_coder = BoxCoder(weights=(10.0,) * spatial_dims + (5.0,) * spatial_dims)
        self.rpn_matcher = IoUMatcher(0.6, 0.3, allow_low_quality_matches=True)
        self.roi_matcher = IoUMatcher(0.5, 0.5, allow_low_quality_matches=False)
        self.rpn_sampler = HardNegativeSampler(batch_size_per_image=256, positive_fraction=0.5, min_neg=16, pool_size=10)
        self.pre_nms = (pre_nms_train, pre_nms_test)
        self.post_nms = (post_nms_train, post_nms_test)
        self.rois_per_image = rois_per_image
        self.score_thresh, self.nms_thresh, self.detections_per_image = score_thresh, nms_thresh, detections_per_image
        # the anchor sizes of each level: a RoI is pooled from the level whose anchors match its size
        base = torch.tensor(anchor_shapes, dtype=torch.float32).prod(1).pow(1.0 / spatial_dims).mean().item()
        self.level_sizes = [base * s for s in feature_map_scales]
        self._anchor_key, self._anchors = None, []  # anchors_for: the last shapes' anchors

    def box_limits(self) -> dict[str, Any]:
        """The per-image box limits (proposals before and after NMS as (training, inference) pairs, detections)."""
        return {"pre_nms": self.pre_nms, "post_nms": self.post_nms, "detections_per_image": self.detections_per_image}

    def set_box_limits(self, limits: dict[str, Any]) -> None:
        for key, value in limits.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------------------------------------
    # 2D exports the whole detector (faster_rcnn_graph.py); 3D has no ONNX grid sampling for its RoI align
    exported_part = "backbone + FPN + RPN heads (proposals, RoI align and the box head run after, in PyTorch)"

    @property
    def encoder(self) -> nn.Module:
        return self.feature_extractor  # ResNet + FPN

    @property
    def head(self) -> PartList:
        return PartList([self.rpn, self.box_head])

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None):
        image_sizes = [list(images.shape[2:])] * len(images)
        if not self.training:
            return self.postprocess(self.dense_outputs(images), image_sizes)
        if targets is None:
            raise ValueError("training needs targets")
        maps, anchors, objectness, deltas = self.rpn_outputs(self.dense_outputs(images))
        proposals = self.propose(anchors, objectness.detach(), deltas.detach(), image_sizes, maps)
        rpn_losses = self.rpn_loss(anchors, objectness, deltas, targets)
        return {**rpn_losses, **self.roi_loss(maps, proposals, targets, images.shape[2:])}

    def dense_outputs(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The FPN maps, then per-level objectness (B, A, *S), then per-level RPN deltas (B, A*2D, *S)."""
        maps = list(self.feature_extractor(images).values())[: self.num_levels]
        objectness, deltas = self.rpn(maps)
        return (*maps, *objectness, *deltas)

    def rpn_outputs(self, head_outputs: Sequence[torch.Tensor]):
        """The head's tuple -> FPN maps, anchors per image, flat objectness (B, N) and deltas (B, N, 2D)."""
        levels = self.num_levels
        maps = list(head_outputs[:levels])
        input_shape = input_shape_of(maps[0], self.feature_extractor.strides[0])
        anchors = self.anchors_for(maps, input_shape)
        objectness = flatten_maps(head_outputs[levels:2 * levels], 1).squeeze(-1)
        deltas = flatten_maps(head_outputs[2 * levels:], 2 * self.spatial_dims)
        return maps, anchors, objectness, deltas

    def anchors_for(self, maps: Sequence[torch.Tensor], input_shape: Sequence[int]) -> list[torch.Tensor]:
        """The anchors of every image, generated once per input and map shapes (as MONAI's RetinaNet keeps them)."""
        # inference-mode tensors must not reach training's autograd: the mode is part of the key
        key = (tuple(input_shape), tuple(tuple(m.shape) for m in maps), maps[0].device, maps[0].dtype,
               torch.is_inference_mode_enabled())
        if getattr(self, "_anchor_key", None) != key:
            self._anchors = self.anchor_generator(anchor_images(maps[0], input_shape), maps)
            self._anchor_key = key
        return self._anchors

    def postprocess(self, head_outputs: Sequence[torch.Tensor], image_sizes: Sequence[Sequence[int]]) -> list[dict]:
        """Proposals (decoding, top-k, NMS), RoI align, the box head and final decoding and NMS."""
        maps, anchors, objectness, deltas = self.rpn_outputs(head_outputs)
        proposals = self.propose(anchors, objectness, deltas, image_sizes, maps)
        return self.detect(maps, proposals, image_sizes)

    def propose(self, anchors, objectness, deltas, image_sizes, maps) -> list[torch.Tensor]:
        """Decoded, clipped, per-level top-k, NMS'd proposals per image."""
        pre, post = self.pre_nms[0 if self.training else 1], self.post_nms[0 if self.training else 1]
        counts = [m.shape[2:].numel() * self.num_anchors for m in maps]
        proposals = []
        for b in range(objectness.shape[0]):
            boxes = self.rpn_coder.decode_single(deltas[b], anchors[b])
            boxes, keep = clip_boxes_to_image(boxes, image_sizes[b], remove_empty=True)
            scores, levels = objectness[b][keep], torch.repeat_interleave(
                torch.arange(len(counts), device=boxes.device), torch.tensor(counts, device=boxes.device))[keep]
            chosen = []
            for level in range(len(counts)):
                idx = torch.where(levels == level)[0]
                chosen.append(idx[scores[idx].topk(min(pre, len(idx))).indices])
            idx = torch.cat(chosen)
            boxes, scores, levels = boxes[idx], scores[idx], levels[idx]
            keep = nms(boxes, scores, 0.7, levels, post)
            proposals.append(boxes[keep])
        return proposals

    def rpn_loss(self, anchors, objectness, deltas, targets) -> dict[str, torch.Tensor]:
        labels, matched_boxes = [], []
        for anchors_b, target in zip(anchors, targets):
            gt = target["boxes"].to(anchors_b)
            if gt.numel() == 0:
                labels.append(torch.zeros(len(anchors_b), dtype=torch.int64, device=anchors_b.device))
                matched_boxes.append(anchors_b)
                continue
            match = self.rpn_matcher(box_iou(gt, anchors_b))
            labels.append((match >= 0).long() - (match == IoUMatcher.BETWEEN_THRESHOLDS).long())
            matched_boxes.append(gt[match.clamp(min=0)])
        pos, neg = self.rpn_sampler.select_samples_img_list(labels, [torch.sigmoid(o) for o in objectness])
        pos, neg = torch.stack(pos).bool(), torch.stack(neg).bool()
        sampled = pos | neg
        target_obj = torch.stack(labels).clamp(min=0).float()
        cls_loss = F.binary_cross_entropy_with_logits(objectness[sampled], target_obj[sampled])
        if pos.any():
            encoded = torch.stack([self.rpn_coder.encode_single(m, a) for m, a in zip(matched_boxes, anchors)])
            box_loss = F.smooth_l1_loss(deltas[pos], encoded[pos], beta=1 / 9, reduction="sum") / max(1, int(sampled.sum()))
        else:
            box_loss = deltas.sum() * 0
        return {"rpn_objectness": cls_loss, "rpn_box": box_loss}

    def pool(self, maps: Sequence[torch.Tensor], boxes: list[torch.Tensor], image_shape) -> torch.Tensor:
        """RoI align of every box on the FPN level whose anchor size is nearest its size (log scale)."""
        all_boxes = torch.cat(boxes)
        batch = torch.cat([torch.full((len(b),), i, dtype=torch.long, device=all_boxes.device) for i, b in enumerate(boxes)])
        d = self.spatial_dims
        size = (all_boxes[:, d:] - all_boxes[:, :d]).clamp(min=1e-3).prod(1).pow(1.0 / d)
        sizes = torch.tensor(self.level_sizes, device=all_boxes.device)
        level = (size.log()[:, None] - sizes.log()[None]).abs().argmin(1)
        out = all_boxes.new_zeros((len(all_boxes), maps[0].shape[1]) + (self.roi_size,) * d)
        for index, fmap in enumerate(maps):
            idx = torch.where(level == index)[0]
            if len(idx):
                scale = fmap.shape[2] / image_shape[0]
                out[idx] = roi_align(fmap, all_boxes[idx], batch[idx], (self.roi_size,) * d, scale, 2)
        return out

    def roi_loss(self, maps, proposals, targets, image_shape) -> dict[str, torch.Tensor]:
        rois, classes, regress = [], [], []
        for props, target in zip(proposals, targets):
            gt, gt_labels = target["boxes"].to(props), target["labels"].to(props.device).long()
            props = torch.cat([props, gt])  # the true boxes are proposals too, so the head sees positives early
            if gt.numel() == 0:
                match = torch.full((len(props),), -1, dtype=torch.long, device=props.device)
            else:
                match = self.roi_matcher(box_iou(gt, props))
            positive, negative = torch.where(match >= 0)[0], torch.where(match < 0)[0]
            num_pos = min(len(positive), self.rois_per_image // 4)
            positive = positive[torch.randperm(len(positive), device=props.device)[:num_pos]]
            negative = negative[torch.randperm(len(negative), device=props.device)[: self.rois_per_image - num_pos]]
            keep = torch.cat([positive, negative])
            rois.append(props[keep])
            labels = torch.zeros(len(keep), dtype=torch.long, device=props.device)
            if num_pos:
                labels[:num_pos] = gt_labels[match[positive]] + 1
                regress.append(self.roi_coder.encode_single(gt[match[positive]], props[positive]))
            classes.append(labels)
        logits, deltas = self.box_head(self.pool(maps, rois, image_shape))
        labels = torch.cat(classes)
        cls_loss = F.cross_entropy(logits, labels)
        positive = torch.where(labels > 0)[0]
        if len(positive):
            d2 = 2 * self.spatial_dims
            deltas = deltas.view(len(deltas), self.num_classes, d2)[positive, labels[positive] - 1]
            box_loss = F.smooth_l1_loss(deltas, torch.cat(regress), beta=1 / 9, reduction="sum") / max(1, len(labels))
        else:
            box_loss = deltas.sum() * 0
        return {"roi_classification": cls_loss, "roi_box": box_loss}

    def detect(self, maps, proposals, image_sizes) -> list[dict[str, torch.Tensor]]:
        d2 = 2 * self.spatial_dims
        if sum(len(p) for p in proposals) == 0:
            return [self._empty(maps[0]) for _ in proposals]
        input_shape = input_shape_of(maps[0], self.feature_extractor.strides[0])
        logits, deltas = self.box_head(self.pool(maps, proposals, input_shape))
        probs = F.softmax(logits, -1)[:, 1:]
        deltas = deltas.view(len(deltas), self.num_classes, d2)
        results, start = [], 0
        for props, image_size in zip(proposals, image_sizes):
            n = len(props)
            p, dl = probs[start:start + n], deltas[start:start + n]
            start += n
            boxes = self.roi_coder.decode_single(dl.reshape(-1, d2), props.repeat_interleave(self.num_classes, 0))
            scores, labels = p.reshape(-1), torch.arange(self.num_classes, device=p.device).repeat(n)
            boxes, keep = clip_boxes_to_image(boxes, image_size, remove_empty=True)
            scores, labels = scores[keep], labels[keep]
            keep = torch.where(scores > self.score_thresh)[0]
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
            keep = nms(boxes, scores, self.nms_thresh, labels, self.detections_per_image)
            results.append({"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]})
        return results

    def _empty(self, ref: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"boxes": ref.new_zeros((0, 2 * self.spatial_dims)), "labels": torch.zeros(0, dtype=torch.long),
                "scores": ref.new_zeros(0)}


def stride_of(levels: int, backbone: dict[str, Any]) -> int:
    """Input size divisor so that every FPN level divides evenly."""
    first = backbone.get("stem_stride", 2) * (2 if backbone.get("max_pool", True) else 1)
    return int(first * 2 ** (levels - 1))


