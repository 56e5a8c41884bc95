"""CIFAR-style ResNet-18: 3×3 stem without max-pooling, four stages of two basic blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel, positive_int
from samlens.models.small_cnn import norm_layer


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = norm_layer(norm, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = norm_layer(norm, c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), norm_layer(norm, c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet18(FeatureModel):
    """ResNet-18 for small images; ``width`` is the first stage's channel count (64 in the original)."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 64, norm: str = "batch"):
        super().__init__()
        if len(input_shape) != 3:
            raise ConfigError(f"cifar_resnet18 needs input_shape (C, H, W), got {input_shape}")
        width = positive_int("width", width)
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], width, 3, padding=1, bias=False), norm_layer(norm, width), nn.ReLU()
        )
        blocks: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(2):
                blocks.append(BasicBlock(c_in, c_out, 2 if (stage > 0 and i == 0) else 1, norm))
                c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(c_in, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.blocks(self.stem(x)))


@MODELS.register("cifar_resnet18")
def cifar_resnet18(
    num_classes: int, input_shape: tuple[int, ...], width: int = 64, norm: str = "batch"
) -> CifarResNet18:
    return CifarResNet18(num_classes, input_shape, width=width, norm=norm)
