"""Grad-CAM / Grad-CAM++: the layer chosen per model family, map shape and range, and where a known model looks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from medsight.explain.gradcam import CamExplainer, explain, target_layer, traced_target_layer


class BrightnessNet(nn.Module):
    """Class 1's logit is the mean positive intensity: its evidence is exactly where the image is bright."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.head = nn.Linear(1, 2, bias=False)
        nn.init.ones_(self.conv.weight)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0], [1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.conv(x)).mean((2, 3)))


def lesion_image(size: int = 32, centre=(8, 22)) -> torch.Tensor:
    yy, xx = np.mgrid[:size, :size]
    blob = np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * 3.0**2))
    return torch.from_numpy((blob + 0.02 * np.random.default_rng(0).random((size, size)))[None].astype(np.float32))


@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_heat_map_lies_on_the_evidence(method):
    image = lesion_image()
    heat = CamExplainer(BrightnessNet(), image[None])(image, class_index=1)[method]
    assert heat.shape == (32, 32) and heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    lesion = np.zeros((32, 32), bool)
    lesion[4:13, 18:27] = True
    assert heat[lesion].mean() > 5 * heat[~lesion].mean()  # not flipped (MONAI's default normaliser flips)
    assert np.unravel_index(heat.argmax(), heat.shape) == pytest.approx((8, 22), abs=1)


# At 16 px VGG-11 pools down to 1 px, so its map is taken before its fourth pool (encoder.20, 2x2).
@pytest.mark.parametrize("name,layer", [("resnet18", "encoder.layer4"), ("lenet5", "encoder.4"),
                                        ("vgg11", "encoder.20"), ("alexnet", "encoder.16"),
                                        ("convnext_small_input", "encoder.stages"), ("efficientnet_b0", "encoder._bn1")])
def test_every_classifier_family_gets_a_layer_and_a_map(name, layer):
    from medsight.models import create_model

    torch.manual_seed(0)
    model = create_model(name, task="classification", spatial_dims=2, in_channels=1, num_classes=3, input_size=16).eval()
    image = torch.randn(1, 16, 16)
    assert target_layer(model, image[None]) == layer
    maps = explain([model], image, class_index=2)
    for heat in maps.values():
        assert heat.shape == (16, 16) and np.isfinite(heat).all() and 0 <= heat.min() <= heat.max() <= 1 + 1e-6
    assert not any(getattr(m, "_forward_hooks", None) for m in model.modules())  # the served model stays clean


def test_unknown_families_are_traced_and_wrappers_are_seen_through():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    assert traced_target_layer(net, torch.zeros(1, 1, 16, 16)) == "3"
    from medsight.models import create_model

    wrapped = nn.Sequential(nn.Identity(), create_model("resnet18", task="classification", spatial_dims=2,
                                                        in_channels=1, num_classes=2, input_size=28))
    assert target_layer(wrapped) == "1.encoder.layer4"
    lenet = nn.Sequential(nn.Identity(), create_model("lenet5", task="classification", spatial_dims=2, in_channels=1,
                                                      num_classes=2))
    assert target_layer(lenet, torch.zeros(1, 1, 28, 28)) == "1.encoder.4"


def test_ensemble_map_is_the_rescaled_mean():
    image = lesion_image()
    one, two = BrightnessNet(), BrightnessNet()
    with torch.no_grad():
        two.conv.weight.mul_(3.0)  # same evidence, larger scale: normalised maps agree
    single = explain([one], image, 1)["gradcam"]
    both = explain([one, two], image, 1)["gradcam"]
    np.testing.assert_allclose(both, single, atol=1e-5)


def test_segmentation_networks_are_explained_per_class():
    from medsight.models import create_model

    torch.manual_seed(0)
    net = create_model("dynunet_tiny", task="segmentation", spatial_dims=3, in_channels=1, num_classes=3).eval()
    volume = torch.randn(1, 16, 16, 16)
    assert target_layer(net, volume[None]) == "upsamples.2"
    maps = explain([net], volume, class_index=2)
    assert all(m.shape == (16, 16, 16) and np.isfinite(m).all() and 0 <= m.min() <= m.max() <= 1 + 1e-6
               for m in maps.values())
