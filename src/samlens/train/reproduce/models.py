"""ResNet-50 (torchvision architecture) for the paper's real-data grids.

The paper's base models are torchvision ResNet-50s initialised from ImageNet weights. samlens
never downloads, so the weights come from a local file (``model.pretrained``: a torchvision
``resnet50-*.pth`` state dict). The grids in ``configs/paper`` list this module under
``imports``; it registers ``resnet50`` only if no other module has registered that name.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel


class ResNet50(FeatureModel):
    """torchvision ResNet-50 trunk as Φ_θ (2048-d after global pooling) and a fresh linear head."""

    def __init__(self, num_classes: int, pretrained: str | None = None, freeze_bn: bool = False) -> None:
        super().__init__()
        from torchvision.models import resnet50

        trunk = resnet50(weights=None)
        if pretrained is not None:
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise ConfigError(f"resnet50: weights file {str(path)!r} not found (torchvision resnet50 .pth)")
            state = torch.load(path, map_location="cpu", weights_only=True)
            missing, _ = trunk.load_state_dict(state, strict=False)
            if [k for k in missing if not k.startswith("fc.")]:
                raise ConfigError(f"resnet50: {path} is not a torchvision ResNet-50 state dict")
        trunk.fc = nn.Identity()
        self.trunk = trunk
        self.head = nn.Linear(2048, num_classes)
        # DomainBed's published numbers keep BatchNorm statistics and affine parameters frozen.
        self.freeze_bn = freeze_bn
        if freeze_bn:
            for module in self._norms():
                for p in module.parameters():
                    p.requires_grad_(False)

    def _norms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.trunk.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> ResNet50:
        super().train(mode)
        if self.freeze_bn:
            for module in self._norms():
                module.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)


def resnet50(
    num_classes: int, input_shape: tuple[int, ...], pretrained: str | None = None, freeze_bn: bool = False
) -> ResNet50:
    """ResNet-50 with ImageNet weights from ``pretrained`` (a local file) when given."""
    if len(input_shape) != 3 or input_shape[0] != 3:
        raise ConfigError(f"resnet50 needs RGB input (3, H, W), got {input_shape}")
    return ResNet50(num_classes, pretrained=pretrained, freeze_bn=freeze_bn)


if "resnet50" not in MODELS:
    MODELS.register("resnet50")(resnet50)
