"""WSAM: weighted sharpness as a regularisation term (Yue et al., KDD 2023).

The loss is L(θ) + γ/(1−γ)·[L(θ + ε) − L(θ)] with ε = ρ g/‖g‖, at SAM's cost (two passes). With
a = γ/(1−γ), g = ∇L(θ) and g̃ = ∇L(θ + ε):

* ``decouple=True`` (the paper's algorithm and the authors' default): the base optimizer steps with g,
  then θ ← θ − lr·a·(g̃ − g), so momentum and Adam's moments see only the loss gradient and the
  sharpness term acts undistorted by them, like decoupled weight decay;
* ``decouple=False``: the base optimizer steps with g + a(g̃ − g) = (1 − a) g + a g̃.

γ = 0.5 (a = 1) is SAM in the coupled form; decoupled it is SAM only for plain SGD (no momentum, no
adaptive scaling). γ = 0 is the base optimizer.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from samlens.optim.geometry import widen
from samlens.optim.variant import SAMVariant
from samlens.validate import check_real


class WSAM(SAMVariant):
    """WSAM around ``base_optimizer``: ``gamma`` ∈ [0, 1) weights the sharpness; ``decouple`` as above."""

    name = "wsam"
    keeps_clean_gradient = True
    per_micro_batch = False

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        gamma: float = 0.9,
        decouple: bool = True,
        **sam_options: Any,
    ) -> None:
        self.gamma = check_real("gamma", gamma, low=0.0, high=1.0, high_open=True)
        self.weight = self.gamma / (1.0 - self.gamma)
        self.decouple = bool(decouple)
        super().__init__(base_optimizer, rho, **sam_options)
        self._sharpness: list[tuple[Tensor, Tensor, float]] = []

    def _combine(self, clean: dict[Tensor, Tensor]) -> None:
        a = self.weight
        self._sharpness = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or p not in clean:
                    continue
                g, gt = widen(clean[p]), widen(p.grad.detach())
                if self.decouple:
                    self._sharpness.append((p, gt - g, float(group["lr"])))
                    p.grad.copy_(g)
                else:
                    p.grad.copy_(g * (1.0 - a) + gt * a)

    def _descend(self) -> None:
        scaler = self.grad_scaler
        inv_scale = None
        if scaler is not None and scaler.is_enabled():
            inv_scale = scaler._scale.double().reciprocal()  # read before update() changes it
        skipped = self._skipped
        super()._descend()  # calls _combine first
        sharpness, self._sharpness = self._sharpness, []
        if not sharpness or self._skipped != skipped:
            return  # not a SAM step, or the base step was skipped: skip the sharpness step too
        with torch.no_grad():
            for p, d, lr in sharpness:
                if inv_scale is not None:
                    d = d * inv_scale.to(d.device, d.dtype)
                if p.dtype == d.dtype:
                    p.add_(d, alpha=-lr * self.weight)
                else:
                    p.copy_(widen(p).add_(d, alpha=-lr * self.weight))

    def _variant_state(self) -> dict[str, Any]:
        return {"gamma": self.gamma, "decouple": self.decouple}
