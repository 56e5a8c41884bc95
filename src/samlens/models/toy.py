"""The toy study's networks (spec §4): small initialisation makes simplicity bias visible.

``init_scale`` sets the size of every weight at initialisation; the head is initialised at the
same scale as the features (a "balanced" start), as in analyses of diagonal and two-layer nets.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.models.registry import MODELS, FeatureModel, positive_int


def _flat_dim(input_shape: tuple[int, ...], name: str) -> int:
    if len(input_shape) != 1:
        raise ConfigError(f"{name} takes vector inputs, input_shape (d,); got {input_shape}")
    return input_shape[0]


def _check_scale(init_scale: float) -> None:
    if not init_scale > 0:
        raise ConfigError(f"init_scale must be > 0, got {init_scale}")


class DiagonalLinear(FeatureModel):
    """One path per input coordinate: Φ(x) = u ⊙ x, f(x) = W Φ(x) + b; effective coefficient β = W ⊙ u."""

    def __init__(
        self, num_classes: int, input_shape: tuple[int, ...], init_scale: float = 0.1, bias: bool = False
    ):
        super().__init__()
        d = _flat_dim(input_shape, "diag_linear")
        _check_scale(init_scale)
        self.u = nn.Parameter(torch.full((d,), float(init_scale)))
        self.head = nn.Linear(d, num_classes, bias=bias)
        with torch.no_grad():
            if num_classes == 1:
                self.head.weight.fill_(init_scale)
            else:  # identical rows would give identical logits forever
                self.head.weight.normal_(0.0, init_scale)
            if bias:
                self.head.bias.zero_()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) * self.u


class _TwoLayer(FeatureModel):
    """Φ(x) = σ(V x + c) (width k), f = W Φ + b: V ~ N(0, s²/d), W ~ N(0, s²/k), biases zero.

    The documented defaults (width, init_scale, bias) are the registered builders' below."""

    model_name = ""
    body_bias = False

    def __init__(
        self, num_classes: int, input_shape: tuple[int, ...], width: int, init_scale: float, bias: bool
    ):
        super().__init__()
        d = _flat_dim(input_shape, self.model_name)
        _check_scale(init_scale)
        width = positive_int("width", width)
        self.body = nn.Linear(d, width, bias=bias and self.body_bias)
        self.head = nn.Linear(width, num_classes, bias=bias)
        with torch.no_grad():
            self.body.weight.normal_(0.0, init_scale / math.sqrt(d))
            self.head.weight.normal_(0.0, init_scale / math.sqrt(width))
            for layer in (self.body, self.head):
                if layer.bias is not None:
                    layer.bias.zero_()


class TwoLayerLinear(_TwoLayer):
    """Φ(x) = V x (width k), f = W Φ + b; effective coefficient β = Vᵀ Wᵀ."""

    model_name = "two_layer_linear"

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))


class TwoLayerReLU(_TwoLayer):
    """Φ(x) = ReLU(V x + c) (width k), f = W Φ + b."""

    model_name = "two_layer_relu"
    body_bias = True

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x.flatten(1)))


@MODELS.register("diag_linear")
def diag_linear(
    num_classes: int, input_shape: tuple[int, ...], init_scale: float = 0.1, bias: bool = False
) -> DiagonalLinear:
    return DiagonalLinear(num_classes, input_shape, init_scale=init_scale, bias=bias)


@MODELS.register("two_layer_linear")
def two_layer_linear(
    num_classes: int,
    input_shape: tuple[int, ...],
    width: int = 20,
    init_scale: float = 0.1,
    bias: bool = False,
) -> TwoLayerLinear:
    return TwoLayerLinear(num_classes, input_shape, width=width, init_scale=init_scale, bias=bias)


@MODELS.register("two_layer_relu")
def two_layer_relu(
    num_classes: int,
    input_shape: tuple[int, ...],
    width: int = 64,
    init_scale: float = 1.0,
    bias: bool = True,
) -> TwoLayerReLU:
    return TwoLayerReLU(num_classes, input_shape, width=width, init_scale=init_scale, bias=bias)


def effective_coefficients(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean input gradient of the first logit, E_x[∂f/∂x] (shape [d]).

    For the linear toy networks this is exactly the effective coefficient β (Vᵀa or W ⊙ u);
    for the ReLU network it is its data-averaged analogue.
    """
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)[:, 0].sum()
        (grad,) = torch.autograd.grad(out, x)
    return grad.mean(0)
