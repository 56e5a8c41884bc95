"""Friendly-SAM / F-SAM (Li et al., CVPR 2024): perturb along the batch's gradient noise only.

m_t = λ m_{t−1} + (1 − λ) g_t (m_0 = 0) estimates the full-batch gradient; the ascent direction is
d_t = g_t − σ m_t, ε = ρ d_t/‖d_t‖, and the update gradient is ∇L(θ + ε) as in SAM. The names follow
the paper: λ (``lmbda``) is the EMA decay, σ (``sigma``) how much of it is removed; σ = 0 is SAM.
The EMA is per perturbed parameter, of the true (unscaled) gradient under a GradScaler, and it is not
updated on a step whose clean gradient is non-finite (one host read per step checks that).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from samlens.optim.variant import SAMVariant
from samlens.validate import check_real

_M = "fsam_m"


class FriendlySAM(SAMVariant):
    """F-SAM around ``base_optimizer``: ``lmbda`` ∈ [0, 1) the EMA decay, ``sigma`` ≥ 0 the removal."""

    name = "fsam"
    per_micro_batch = False

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        sigma: float = 1.0,
        lmbda: float = 0.6,
        **sam_options: Any,
    ) -> None:
        self.sigma = check_real("sigma", sigma, low=0.0)
        self.lmbda = check_real("lmbda", lmbda, low=0.0, high=1.0, high_open=True)
        super().__init__(base_optimizer, rho, **sam_options)
        self._update_ema = True
        self._inv_scale: Tensor | None = None

    @torch.no_grad()
    def _ascend(self, consume_grads: bool = True) -> None:
        scaler = self.grad_scaler
        scaled = scaler is not None and scaler.is_enabled()
        self._inv_scale = scaler._scale.double().reciprocal() if scaled else None
        self._update_ema = not (scaled or self.nonfinite == "skip") or self._grads_finite()
        super()._ascend(consume_grads)

    def _ascent_gradient(self, p: Tensor, group: dict[str, Any], inv_scale: Tensor | None) -> Tensor:
        # The EMA needs true (unscaled) gradients; SAM's rule unscales before it adds the ascent
        # weight decay, so the decay term is not shrunk by the loss scale.
        unscale = self._inv_scale.to(p.device) if self._inv_scale is not None else None
        g = super()._ascent_gradient(p, group, unscale)
        if not self._update_ema:
            return g  # non-finite: SAM's own check skips the ascent
        state = self.state[p]
        m = state.get(_M)
        if m is None:
            m = state[_M] = torch.zeros_like(g)
        m.mul_(self.lmbda).add_(g, alpha=1.0 - self.lmbda)
        return g - self.sigma * m

    def _variant_state(self) -> dict[str, Any]:
        return {"m": self._save_tensors(_M), "sigma": self.sigma, "lmbda": self.lmbda}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        self._load_tensors(_M, state.get("m", {}))
