"""Importance weights λ of examples, their Lorenz curve and Gini coefficient (spec §3).

λ_i = ½‖r_i‖₁ with r_i = ∂ℓ_i/∂z_i: for cross-entropy 1 − p_{y_i}, for the single-logit logistic
loss σ(−ỹ_i z_i) with ỹ ∈ {−1, +1}. λ is read at the real parameters; λ̃ is the same quantity at
LSAM's phantom head (W̃, b̃) = (W, b) + ρ ∇_head L / ‖∇_head L‖.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from samlens.errors import ConfigError
from samlens.optim.perturbation import phantom


def importance_weights(logits: Tensor, labels: Tensor) -> Tensor:
    """λ_i = ½‖∂ℓ_i/∂z_i‖₁; ``logits`` [N, C] (C = 1: logistic loss with labels in {0, 1})."""
    logits = logits.detach()
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ConfigError(f"logits must be [N, C] matching {len(labels)} labels, got {tuple(logits.shape)}")
    if logits.shape[1] == 1:
        sign = labels.to(logits.dtype) * 2 - 1
        return torch.sigmoid(-sign * logits[:, 0])
    p_true = F.softmax(logits, dim=1).gather(1, labels.long().view(-1, 1)).squeeze(1)
    return 1 - p_true


def _loss(logits: Tensor, labels: Tensor) -> Tensor:
    if logits.shape[1] == 1:
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.to(logits.dtype))
    return F.cross_entropy(logits, labels.long())


def phantom_importance_weights(
    model: nn.Module, x: Tensor, labels: Tensor, rho: float, rho_mode: str = "absolute"
) -> tuple[Tensor, Tensor]:
    """(λ, λ̃): importance weights at the real head and at the LSAM phantom head for batch (x, labels).

    The phantom head uses the head gradient of the mean loss over this batch, like one LSAM step.
    """
    head: nn.Linear = model.head
    with torch.no_grad():
        phi = model.features(x)
    params = [head.weight] + ([head.bias] if head.bias is not None else [])
    with torch.enable_grad():
        logits = head(phi)
        grads = torch.autograd.grad(_loss(logits, labels), params)
    # The phantom head θ + ε, from the same perturbation core as LSAM's step.
    moved = phantom(params, grads, rho, rho_mode)
    shifted = F.linear(phi, moved[0], moved[1] if head.bias is not None else None)
    return importance_weights(logits, labels), importance_weights(shifted, labels)


def lorenz_curve(weights: object) -> tuple[np.ndarray, np.ndarray]:
    """Points (k/n, L(k/n)) for k = 0..n: cumulative share of the k smallest weights."""
    w = np.sort(np.asarray(weights, dtype=np.float64).ravel())
    if w.size == 0:
        raise ConfigError("a Lorenz curve needs at least one weight")
    if np.any(w < 0) or not np.all(np.isfinite(w)):
        raise ConfigError("importance weights must be finite and >= 0")
    total = w.sum()
    if total <= 0:
        raise ConfigError("importance weights sum to zero; the Lorenz curve is undefined")
    shares = np.concatenate([[0.0], np.cumsum(w) / total])
    return np.linspace(0.0, 1.0, w.size + 1), shares


def gini(weights: object) -> float:
    """Gini = 1 − 2∫L, the area under the Lorenz curve by the trapezoid rule (0 = all equal)."""
    p, shares = lorenz_curve(weights)
    area = float(np.sum((shares[1:] + shares[:-1]) * np.diff(p)) / 2)
    return 1.0 - 2.0 * area
