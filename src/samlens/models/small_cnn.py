"""A 4-layer CNN; global average pooling makes it work on any (also non-square) image size."""

from __future__ import annotations

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel, positive_int

NORMS = ("batch", "group", "none")


def norm_layer(kind: str, channels: int) -> nn.Module:
    """BatchNorm, GroupNorm (8 groups or fewer) or identity."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = next(g for g in (8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "none":
        return nn.Identity()
    raise ConfigError(f"unknown norm {kind!r}; valid choices: {', '.join(NORMS)}")


class SmallCNN(FeatureModel):
    """conv(3×3) → norm → ReLU, four times (stride 2 after the first), then global average pooling."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 32, norm: str = "batch"):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"small_cnn needs input_shape (C, H, W), got {input_shape}")
        width = positive_int("width", width)
        channels = [input_shape[0], width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        for i in range(4):
            stride = 1 if i == 0 else 2
            layers += [
                nn.Conv2d(channels[i], channels[i + 1], 3, stride=stride, padding=1, bias=norm == "none"),
                norm_layer(norm, channels[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(channels[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@MODELS.register("small_cnn")
def small_cnn(
    num_classes: int, input_shape: tuple[int, ...], width: int = 32, norm: str = "batch"
) -> SmallCNN:
    return SmallCNN(num_classes, input_shape, width=width, norm=norm)
