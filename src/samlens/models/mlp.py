"""A fully connected network (flattens its input)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel, positive_int

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


class MLP(FeatureModel):
    """Flatten → (Linear → activation) × len(hidden) → Linear head."""

    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        hidden: Sequence[int] | int = (256, 256),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ConfigError(f"unknown activation {activation!r}; valid choices: {', '.join(_ACTIVATIONS)}")
        if isinstance(hidden, int):
            hidden = (hidden,)
        hidden = [positive_int("hidden size", h) for h in hidden]
        if not hidden:
            raise ConfigError("mlp needs at least one hidden layer (features would be the raw input)")
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(input_shape)
        for h in hidden:
            layers += [nn.Linear(width, int(h)), _ACTIVATIONS[activation]()]
            width = int(h)
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


@MODELS.register("mlp")
def mlp(
    num_classes: int,
    input_shape: tuple[int, ...],
    hidden: Sequence[int] | int = (256, 256),
    activation: str = "relu",
) -> MLP:
    return MLP(num_classes, input_shape, hidden=hidden, activation=activation)
