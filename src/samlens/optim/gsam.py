"""GSAM: surrogate-gap guided SAM (Zhuang et al., ICLR 2022).

With g = ∇L(θ), ε = ρ_t g/‖g‖ and g_p = ∇L(θ + ε), g splits into its part along g_p and the rest
g_⊥ = g − (g·g_p / ‖g_p‖²) g_p. The descent gradient is g_p − α g_⊥: it minimises the perturbed loss
and, along g_⊥ (which leaves the perturbed loss unchanged to first order), raises the clean loss, so the
surrogate gap L(θ + ε) − L(θ) shrinks. The radius follows the learning rate,
ρ_t = ρ_min + (ρ_max − ρ_min)(lr_t − lr_min)/(lr_max − lr_min), per param group, from the group's lr at
the step; lr_max = lr_min means a constant ρ_t = ρ_max. The schedule lives in each param group
(``rho_max``, ``rho_min``, ``lr_max``, ``lr_min``, and the current ``rho``), so it is in ``state_dict``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.optim.geometry import widen
from samlens.optim.perturbation import NORM_EPS
from samlens.optim.variant import SAMVariant
from samlens.validate import check_real, check_rho


def gsam_rho(lr: float, rho_max: float, rho_min: float, lr_max: float, lr_min: float) -> float:
    """ρ_t for learning rate ``lr``, clamped to [ρ_min, ρ_max] when lr leaves [lr_min, lr_max]."""
    if lr_max == lr_min:
        return rho_max
    rho = rho_min + (rho_max - rho_min) * (lr - lr_min) / (lr_max - lr_min)
    return min(max(rho, rho_min), rho_max)


class GSAM(SAMVariant):
    """GSAM around ``base_optimizer``.

    Args:
        rho: ρ_max (the radius at lr = lr_max).
        rho_min: ρ at lr = lr_min (default: ``rho``, a constant radius).
        alpha: α, the weight of the ascent along g_⊥ (0: SAM with the scheduled radius).
        lr_max, lr_min: the learning-rate range the radius follows (default: each group's lr at
            construction, and 0).
        sam_options: every ``SAM`` option.
    """

    name = "gsam"
    keeps_clean_gradient = True
    per_micro_batch = False

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        rho_min: float | None = None,
        alpha: float = 0.4,
        lr_max: float | None = None,
        lr_min: float = 0.0,
        **sam_options: Any,
    ) -> None:
        rho = check_rho(rho)
        rho_min = rho if rho_min is None else check_rho(rho_min, "rho_min")
        if rho_min > rho:
            raise ConfigError(f"rho_min must be <= rho (rho_max), got rho_min={rho_min!r}, rho={rho!r}")
        self.alpha = check_real("alpha", alpha, low=0.0)
        lr_min = check_real("lr_min", lr_min, low=0.0)
        super().__init__(base_optimizer, rho, **sam_options)
        for group in self.param_groups:
            top = float(group["lr"]) if lr_max is None else check_real("lr_max", lr_max, low=0.0)
            if top < lr_min or (top == lr_min and rho_min != rho):
                raise ConfigError(
                    f"GSAM needs lr_max > lr_min (or lr_max == lr_min with rho_min == rho), "
                    f"got lr_max={top!r}, lr_min={lr_min!r}"
                )
            group.update(rho_max=rho, rho_min=rho_min, lr_max=top, lr_min=lr_min)

    @torch.no_grad()
    def _ascend(self, consume_grads: bool = True) -> None:
        for group in self.param_groups:
            group["rho"] = gsam_rho(
                float(group["lr"]), group["rho_max"], group["rho_min"], group["lr_max"], group["lr_min"]
            )
        super()._ascend(consume_grads)

    def _combine(self, clean: dict[Tensor, Tensor]) -> None:
        pairs = [(p, clean[p]) for p in self._params() if p.grad is not None and p in clean]
        if not pairs or self.alpha == 0.0:
            return
        gp = [widen(p.grad.detach()) for p, _ in pairs]
        g = [widen(c) for _, c in pairs]
        acc = torch.float64 if any(t.dtype == torch.float64 for t in gp) else torch.float32
        device = pairs[0][0].device
        dot = torch.stack([(a * b).sum().to(device, acc) for a, b in zip(g, gp)]).sum()
        sq = torch.stack([b.pow(2).sum().to(device, acc) for b in gp]).sum()
        coef = dot / (sq + NORM_EPS)  # g·g_p / ‖g_p‖²
        # g_p − α(g − coef·g_p) = (1 + α·coef)·g_p − α·g
        for (p, _), a, b in zip(pairs, g, gp):
            p.grad.copy_(b * (1.0 + self.alpha * coef).to(b.dtype) - self.alpha * a)

    def _variant_state(self) -> dict[str, Any]:
        return {"alpha": self.alpha}
