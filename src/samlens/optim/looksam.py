"""LookSAM: SAM every k steps, gradient reuse in between (Liu et al., CVPR 2022).

Every k-th step is a full SAM step: g = ∇L(θ), g_s = ∇L(θ + ρ g/‖g‖), and the part of g_s orthogonal to
g, g_v = g_s − (g·g_s/‖g‖²) g, is stored; the base optimizer steps with g_s. On the other k − 1 steps
the closure runs ONCE (one forward/backward, the clean gradient g) and the base optimizer steps with
g + α (‖g‖/‖g_v‖) g_v. A step therefore costs (k + 1)/k forward/backward passes on average.

Built on SAM's periodic schedule (``interval = k``), so the manual form works as for periodic SAM:
``first_step()`` returns False on a reuse step after stepping with the reused direction. Norms and the
projection are global (over every parameter with a gradient in both passes), as in the paper's
Algorithm 1 (the layer-wise Look-LayerSAM is a different method).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.optim.geometry import widen
from samlens.optim.perturbation import NORM_EPS
from samlens.optim.variant import SAMVariant
from samlens.validate import check_positive_int, check_real

_GV = "looksam_gv"


def _total(values: list[Tensor]) -> Tensor:
    device = values[0].device
    acc = torch.float64 if any(v.dtype == torch.float64 for v in values) else torch.float32
    return torch.stack([v.to(device, acc) for v in values]).sum()


class LookSAM(SAMVariant):
    """LookSAM around ``base_optimizer``: a SAM step every ``k`` steps, ``alpha`` scales the reuse."""

    name = "looksam"
    keeps_clean_gradient = True

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        k: int = 5,
        alpha: float = 0.7,
        **sam_options: Any,
    ) -> None:
        if "interval" in sam_options:
            raise ConfigError("optimizer 'looksam': set k (the SAM-step period), not interval")
        self.k = check_positive_int("k", k)
        self.alpha = check_real("alpha", alpha, low=0.0)
        super().__init__(base_optimizer, rho, interval=self.k, **sam_options)
        self._gv_norm: float | None = None
        self.reuse_steps = 0

    def _combine(self, clean: dict[Tensor, Tensor]) -> None:
        """A SAM step: store g_v from g (``clean``) and g_s (``.grad``); the update is g_s itself."""
        pairs = [
            (p, widen(clean[p]), widen(p.grad.detach()))
            for p in self._params()
            if p.grad is not None and p in clean
        ]
        if not pairs:
            return
        dot = _total([(g * gs).sum() for _, g, gs in pairs])
        sq = _total([g.pow(2).sum() for _, g, _ in pairs])
        coef = dot / (sq + NORM_EPS)
        gvs = [gs - coef.to(gs.dtype) * g for _, g, gs in pairs]
        norm = math.sqrt(float(_total([v.pow(2).sum() for v in gvs])))  # one host read per k steps
        if not math.isfinite(norm):
            return  # a non-finite SAM step (skipped downstream) keeps the previous g_v
        for p in self._params():
            self.state[p].pop(_GV, None)
        for (p, _, _), v in zip(pairs, gvs):
            self.state[p][_GV] = v
        self._gv_norm = norm

    def _reuse(self) -> None:
        """A reuse step: ``.grad`` holds g; make it g + α (‖g‖/‖g_v‖) g_v."""
        params = [p for p in self._params() if p.grad is not None and _GV in self.state[p]]
        pairs = [(p, self.state[p][_GV]) for p in params]
        if not pairs or not self._gv_norm:
            return
        gnorm = _total([widen(p.grad.detach()).pow(2).sum() for p, _ in pairs]).sqrt()
        scale = gnorm * (self.alpha / (self._gv_norm + NORM_EPS))
        for p, v in pairs:
            p.grad.add_((v * scale.to(v.dtype)).to(p.grad.dtype))
        self.reuse_steps += 1

    def _descend(self) -> None:
        if self._clean is None:  # no ascent in this step: a reuse step
            with torch.no_grad():
                self._reuse()
        super()._descend()

    def accumulate_step(self, closure: Any, num_micro_batches: int, mode: str) -> Tensor:
        raise ConfigError(
            "optimizer 'looksam' does not support gradient accumulation (accumulate_step): its reuse "
            "steps run one pass on one batch"
        )

    def _variant_state(self) -> dict[str, Any]:
        return {"gv": self._save_tensors(_GV), "gv_norm": self._gv_norm, "reuse_steps": self.reuse_steps}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        self._load_tensors(_GV, state.get("gv", {}))
        self._gv_norm = state.get("gv_norm")
        self.reuse_steps = int(state.get("reuse_steps", 0))
