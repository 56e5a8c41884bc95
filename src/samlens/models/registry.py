"""The model registry and the protocol every samlens model follows.

A model is ``forward(x) == head(features(x))``: a feature extractor Φ_θ and a linear head.
The mechanism optimizers (LSAM, IW-only, LR-only) and the probes rely on that split.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.registry import Registry
from samlens.validate import check_type

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


def model_options(name: str) -> dict[str, Any]:
    """The options a model takes, with their defaults (``inspect.Parameter.empty`` if required)."""
    return MODELS.options(name, ("num_classes", "input_shape"))


def check_options(name: str, options: dict[str, Any]) -> None:
    """Unknown option names and values of the wrong type raise one-line ``ConfigError``s."""
    factory = MODELS.get(name)
    valid = model_options(name)
    takes_any = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(factory).parameters.values())
    unknown = sorted(set(options) - set(valid))
    if unknown and not takes_any:
        listed = ", ".join(sorted(valid)) or "(none)"
        raise ConfigError(f"model {name!r}: unknown option(s) {', '.join(unknown)}; valid options: {listed}")
    try:
        hints = typing.get_type_hints(factory)
    except Exception:  # an annotation that cannot be resolved: nothing to check against
        return
    for key, value in options.items():
        if key in hints:
            try:
                check_type(f"option {key}", value, hints[key])
            except ConfigError as err:
                raise ConfigError(f"model {name!r}: {err}") from None


def positive_int(name: str, value: int) -> int:
    """A layer size: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def get_model(name: str, num_classes: int, input_shape: Sequence[int] | int, **options: Any) -> nn.Module:
    """Build the model registered as ``name``.

    ``num_classes`` is the head's output size (1 for a single-logit binary/logistic model);
    ``input_shape`` is the shape of one example, e.g. (3, 64, 32) or (d,). Unknown options,
    values of the wrong type and out-of-range sizes raise ``ConfigError``.
    """
    factory = MODELS.get(name)
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    check_options(name, options)
    return factory(num_classes=int(num_classes), input_shape=_shape(input_shape), **options)


def list_models() -> list[str]:
    return MODELS.names()
