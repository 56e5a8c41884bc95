"""The decomposition of the LSAM update at its phantom head (spec §3).

LSAM perturbs only the head: (W̃, b̃) = (W, b) + ρ ∇_head L / ‖∇_head L‖. Compared with SGD its update
changes two things, and each variant here switches them on separately:

=========  ===================  ==============================  =============================
variant    residual r* = ∂ℓ/∂z  matrix backpropagated to Φ       name
=========  ===================  ==============================  =============================
``sgd``    r (real head)        W                               baseline
``iw``     r̃ (phantom head)     W                               importance weighting only
``lr``     r (real head)        W̃                               learning-rate scaling only
``lsam``   r̃                    W̃                               both (= autograd at (θ, W̃))
=========  ===================  ==============================  =============================

The head's gradient is mean_i r*_i Φ_iᵀ in every variant. The perturbed pass calls the same
closure as SGD; only the head's forward is intercepted by a custom autograd function whose forward
uses one weight and whose backward to the features uses the other. Because the residual is whatever
the closure's loss makes of the logits, the variants work for cross-entropy, the binary logistic
loss and any other loss of the logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from samlens.errors import ConfigError
from samlens.optim.registry import OPTIMIZERS, build_base
from samlens.optim.wrapper import WrappedOptimizer

VARIANTS = ("sgd", "iw", "lr", "lsam")
RHO_MODES = ("absolute", "relative")
_NORM_EPS = 1e-12
Closure = Callable[[], Tensor]


class _SplitHead(torch.autograd.Function):
    """z = Φ W_fwdᵀ + b_fwd in the forward; ∂/∂Φ = g W_bwd in the backward.

    W_fwd, b_fwd and W_bwd are constants; the gradients for the head's parameters (W, b) are
    gᵀΦ and Σg — the head gradient at whatever residual the forward produced.
    """

    @staticmethod
    def forward(ctx, phi, weight, bias, w_fwd, b_fwd, w_bwd):  # type: ignore[override]
        ctx.save_for_backward(phi, w_bwd)
        ctx.has_bias = bias is not None
        out = phi @ w_fwd.T
        return out + b_fwd if b_fwd is not None else out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        phi, w_bwd = ctx.saved_tensors
        grad_phi = grad_out @ w_bwd
        grad_w = grad_out.T @ phi
        grad_b = grad_out.sum(0) if ctx.has_bias else None
        return grad_phi, grad_w, grad_b, None, None, None


def _running_buffers(model: nn.Module) -> list[Tensor]:
    return [
        b
        for name, b in model.named_buffers()
        if name.rsplit(".", 1)[-1].startswith(("running_", "num_batches"))
    ]


class Decomposition(WrappedOptimizer):
    """SGD / IW-only / LR-only / LSAM around any base optimizer; stepped with ``step(closure)``.

    Args:
        model: a samlens model (``features`` + linear ``head``); the closure must call ``model(x)``
            (or anything that calls ``model.head``) so the head's forward can be intercepted.
        base_optimizer: the descent optimizer over the model's parameters (weight decay lives there).
        variant: one of ``sgd``, ``iw``, ``lr``, ``lsam``.
        rho: radius of the head perturbation.
        rho_mode: ``absolute`` (‖ε‖ = ρ) or ``relative`` (‖ε‖ = ρ·‖(W, b)‖, so the perturbation keeps
            its size relative to a head that grows during training).

    Running statistics (BatchNorm) keep only the clean pass's update.
    """

    def __init__(
        self,
        model: nn.Module,
        base_optimizer: torch.optim.Optimizer,
        variant: str = "lsam",
        rho: float = 0.05,
        rho_mode: str = "absolute",
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}; valid choices: {', '.join(VARIANTS)}")
        if rho_mode not in RHO_MODES:
            raise ConfigError(f"unknown rho_mode {rho_mode!r}; valid choices: {', '.join(RHO_MODES)}")
        if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho >= 0):
            raise ConfigError(f"rho must be a finite number >= 0, got {rho!r}")
        head = getattr(model, "head", None)
        if not isinstance(head, nn.Linear):
            raise ConfigError(f"{type(model).__name__} has no linear `head`; the decomposition needs one")
        # Share the base optimizer's param_groups/state so schedulers and checkpoints see one optimizer.
        super().__init__(base_optimizer)
        self.model = model
        self.head = head
        self.variant = variant
        self.rho = float(rho)
        self.rho_mode = rho_mode
        self.last_phantom: tuple[Tensor, Tensor | None] | None = None

    @torch.no_grad()
    def phantom_head(self) -> tuple[Tensor, Tensor | None]:
        """(W̃, b̃) from the head gradients currently in ``.grad`` (zero gradient → W̃ = W)."""
        w, b = self.head.weight, self.head.bias
        gw = w.grad if w.grad is not None else torch.zeros_like(w)
        grads = [gw.float()]
        if b is not None:
            grads.append((b.grad if b.grad is not None else torch.zeros_like(b)).float())
        norm = torch.sqrt(sum((g * g).sum() for g in grads))
        radius = torch.tensor(self.rho, device=w.device)
        if self.rho_mode == "relative":
            size = w.detach().float().pow(2).sum()
            if b is not None:
                size = size + b.detach().float().pow(2).sum()
            radius = radius * size.sqrt()
        scale = radius / (norm + _NORM_EPS)
        w_t = (w.detach().float() + scale * grads[0]).to(w.dtype)
        b_t = (b.detach().float() + scale * grads[1]).to(b.dtype) if b is not None else None
        return w_t, b_t

    def _intercepted_forward(self, w_t: Tensor, b_t: Tensor | None) -> Callable[[Tensor], Tensor]:
        head = self.head
        w_real = head.weight.detach()
        b_real = head.bias.detach() if head.bias is not None else None
        if self.variant == "iw":  # phantom residuals, real backprop matrix
            w_fwd, b_fwd, w_bwd = w_t, b_t, w_real
        else:  # "lr": real residuals, phantom backprop matrix
            w_fwd, b_fwd, w_bwd = w_real, b_real, w_t

        def forward(phi: Tensor) -> Tensor:
            return _SplitHead.apply(phi, head.weight, head.bias, w_fwd, b_fwd, w_bwd)

        return forward

    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One update; returns the clean loss (a tensor, no host sync)."""
        if closure is None:
            raise ValueError("the decomposition optimizers need a closure (zero_grad + forward + backward)")
        with torch.enable_grad():
            loss = closure()
        if self.variant == "sgd":
            self.base_optimizer.step()
            return loss
        w_t, b_t = self.phantom_head()
        self.last_phantom = (w_t, b_t)
        buffers = _running_buffers(self.model)
        saved_buffers = [b.detach().clone() for b in buffers]
        try:
            if self.variant == "lsam":
                saved_w = self.head.weight.detach().clone()
                saved_b = self.head.bias.detach().clone() if b_t is not None else None
                with torch.no_grad():
                    self.head.weight.copy_(w_t)
                    if b_t is not None:
                        self.head.bias.copy_(b_t)
                try:
                    with torch.enable_grad():
                        closure()
                finally:  # restore exactly (copy_, never subtraction or rebinding .data)
                    with torch.no_grad():
                        self.head.weight.copy_(saved_w)
                        if saved_b is not None:
                            self.head.bias.copy_(saved_b)
            else:
                self.head.forward = self._intercepted_forward(w_t, b_t)  # instance attribute shadows
                try:
                    with torch.enable_grad():
                        closure()
                finally:
                    del self.head.forward
        finally:
            with torch.no_grad():
                for buf, old in zip(buffers, saved_buffers):
                    buf.copy_(old)
        self.base_optimizer.step()
        return loss


def _factory(variant: str) -> Callable[..., Decomposition]:
    def factory(
        model: nn.Module,
        rho: float = 0.05,
        rho_mode: str = "absolute",
        base: str = "sgd",
        **base_options: Any,
    ) -> Decomposition:
        return Decomposition(
            model, build_base(model.parameters(), base, **base_options), variant, rho, rho_mode
        )

    factory.__doc__ = f"Decomposition variant {variant!r} (see samlens.optim.decomposition)."
    return factory


for _variant in ("iw", "lr"):
    OPTIMIZERS.register(_variant)(_factory(_variant))
# LSAM through the same code path, so the four rows of the table differ in nothing else.
OPTIMIZERS.register("lsam_decomposed")(_factory("lsam"))
