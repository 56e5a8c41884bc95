"""The CNN of the SAM feature-learning paper: three stride-2 3x3 convolutions, ReLU, flatten, linear.

No BatchNorm and no pooling: the features are the flattened last feature map, so their size
depends on the input (``feature_dim`` = channels x ceil(H/8) x ceil(W/8)).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel
from samlens.validate import check_real

BASE_CHANNELS = (32, 64, 128)


def paper_channels(width: float) -> list[int]:
    """Channel counts of the three convolutions: 32, 64, 128 times ``width`` (rounded, at least 1)."""
    return [max(1, round(c * width)) for c in BASE_CHANNELS]


class PaperCNN(FeatureModel):
    """conv(3×3, stride 2, padding 1) → ReLU, three times, then flatten and a linear head."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: float = 1.0):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"paper_cnn needs input_shape (C, H, W), got {input_shape}")
        width = check_real("width", width, low=0.0, low_open=True)
        channels = [input_shape[0], *paper_channels(width)]
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(channels[i], channels[i + 1], 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers, nn.Flatten())
        # Each stride-2 convolution with padding 1 maps a side n to ceil(n / 2).
        h, w = input_shape[1], input_shape[2]
        for _ in range(3):
            h, w = math.ceil(h / 2), math.ceil(w / 2)
        self.head = nn.Linear(channels[-1] * h * w, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@MODELS.register("paper_cnn")
def paper_cnn(num_classes: int, input_shape: tuple[int, ...], width: float = 1.0) -> PaperCNN:
    return PaperCNN(num_classes, input_shape, width=width)
