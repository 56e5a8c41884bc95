"""The model registry and the protocol every samlens model follows.

A model is ``forward(x) == head(features(x))``: a feature extractor Φ_θ and a linear head.
The mechanism optimizers (LSAM, IW-only, LR-only) and the probes rely on that split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.registry import Registry

ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")


class FeatureModel(nn.Module):
    """Base class: subclasses set ``self.head`` (an ``nn.Linear``) and implement ``features``."""

    head: nn.Linear

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _shape(input_shape: Sequence[int] | int) -> tuple[int, ...]:
    shape = (input_shape,) if isinstance(input_shape, int) else tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape):
        raise ConfigError(f"input_shape must be positive sizes, got {input_shape!r}")
    return shape


def get_model(name: str, num_classes: int, input_shape: Sequence[int] | int, **options: Any) -> nn.Module:
    """Build the model registered as ``name``.

    ``num_classes`` is the head's output size (1 for a single-logit binary/logistic model);
    ``input_shape`` is the shape of one example, e.g. (3, 64, 32) or (d,).
    """
    factory = MODELS.get(name)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    try:
        return factory(num_classes=int(num_classes), input_shape=_shape(input_shape), **options)
    except TypeError as err:  # an option the factory does not take
        raise ConfigError(f"model {name!r}: {err}") from None


def list_models() -> list[str]:
    return MODELS.names()
