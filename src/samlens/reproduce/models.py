"""ResNet-50 with frozen BatchNorm, for the DomainBed grids.

DomainBed's published numbers fine-tune a torchvision ResNet-50 whose BatchNorm layers stay in
eval mode with fixed affine parameters. samlens registers ``resnet50`` (ImageNet weights from a
local torchvision state dict) without that option; the DomainBed grids list this module under
``imports`` to add ``resnet50_frozen_bn``.
"""

from __future__ import annotations

from torch import nn

from samlens.models.pretrained import TorchvisionResNet
from samlens.models.registry import MODELS


class FrozenBNResNet50(TorchvisionResNet):
    """``resnet50`` whose BatchNorm layers never update statistics or affine parameters."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], pretrained: str | None) -> None:
        super().__init__("resnet50", num_classes, input_shape, pretrained)
        for module in self._norms():
            for p in module.parameters():
                p.requires_grad_(False)

    def _norms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.trunk.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> FrozenBNResNet50:
        super().train(mode)
        for module in self._norms():
            module.eval()
        return self


def resnet50_frozen_bn(
    num_classes: int, input_shape: tuple[int, ...], pretrained: str | None = None
) -> FrozenBNResNet50:
    """torchvision ResNet-50 (``pretrained`` = local state-dict path) with frozen BatchNorm."""
    return FrozenBNResNet50(num_classes, input_shape, pretrained)


if "resnet50_frozen_bn" not in MODELS:
    MODELS.register("resnet50_frozen_bn")(resnet50_frozen_bn)
