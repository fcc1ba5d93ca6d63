"""The 2D Faster R-CNN exported whole (postprocess in the ONNX graph) gives PyTorch's boxes, labels and scores."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def detector():
    """A seeded, untrained Faster R-CNN whose classification layers are widened (std 1 instead of 0.01), so
    that its scores are spread out: near-equal scores would leave the NMS order to rounding."""
    from medsight.models import create_model

    torch.manual_seed(0)
    model = create_model("faster_rcnn", task="detection", spatial_dims=2, in_channels=1, num_classes=2,
                         anchor_shapes=[[6.0, 6.0], [10.0, 8.0]], feature_map_scales=[1, 2, 4, 8])
    for layer in (model.rpn.objectness, model.box_head.cls):
        torch.nn.init.normal_(layer.weight, std=1.0)
    return model.eval()


def blobs(height: int, width: int) -> torch.Tensor:
    """(1, 1, H, W): a few bright squares on noise."""
    image = torch.randn((1, 1, height, width), generator=torch.Generator().manual_seed(1)) * 0.1
    for top, left, side in ((4, 6, 10), (30, 40, 16), (50, 10, 8)):
        image[..., top:top + side, left:left + side] += 2.0
    return image


def test_graph_in_pytorch_is_the_detectors_own_forward(detector):
    from medsight.models.detection.faster_rcnn_graph import FasterRCNNGraph

    x = blobs(64, 96)
    with torch.no_grad():
        expected = detector(x)[0]
        boxes, scores, labels = FasterRCNNGraph(detector)(x)
    assert len(expected["boxes"]) > 10
    torch.testing.assert_close(boxes, expected["boxes"], rtol=0, atol=1e-5)
    torch.testing.assert_close(scores, expected["scores"], rtol=0, atol=1e-6)
    assert torch.equal(labels, expected["labels"])


def test_onnx_graph_matches_pytorch_at_two_sizes_and_dense_exports_still_decode(detector, tmp_path):
    import onnx

    from medsight.export.onnx import export_model
    from medsight.inference.engines import OnnxEngine
    from medsight.models.detection.dense import DenseHead
    from medsight.tasks.detection.export import export_agreement, export_module, match_boxes
    from medsight.tasks.detection.infer import detections

    whole = export_module(detector)
    names, axes = export_model(whole, blobs(64, 96), tmp_path / "model.onnx")
    assert names == ["boxes", "scores", "labels"] and axes["image"] == {2: "dim0", 3: "dim1"}
    engine = OnnxEngine(tmp_path / "model.onnx", threads=1)
    assert engine.gives_detections
    nodes = {node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node}
    assert {"NonMaxSuppression", "TopK", "GridSample"} <= nodes  # the postprocess runs in onnxruntime
    for x in (blobs(64, 96), blobs(96, 64)):  # the exported size, and another one (dynamic spatial axes)
        with torch.no_grad():
            expected = detector(x)
        got = detections(engine, x)
        agree, box_gap, score_gap = match_boxes(expected[0], got[0])
        assert len(expected[0]["boxes"]) > 10 and agree, (box_gap, score_gap)
    report = export_agreement(detector, engine, torch.cat([blobs(64, 96), blobs(64, 96).flip(-1)]))
    assert report["agree"] and report["cases"] == 2 and report["min_matched_iou"] > 0.9999
    # an export of the dense part alone (as medsight wrote before) is still decoded by the PyTorch postprocess
    export_model(DenseHead(detector), blobs(64, 96), tmp_path / "dense.onnx", spatial_dynamic=True)
    dense = OnnxEngine(tmp_path / "dense.onnx", threads=1, torch_module=detector)
    assert not dense.gives_detections
    x = blobs(64, 96)
    with torch.no_grad():
        assert match_boxes(detector(x)[0], detections(dense, x)[0])[0]
