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

**Single pass** (the default). The head perturbation leaves Φ unchanged, so the backbone's forward
is computed once. The closure still runs twice, but the backbone only once each way:

1. clean call: ``model.features`` runs as usual and its output Φ (with its autograd graph) is kept;
   the head sees Φ detached, so the closure's backward stops at the head and yields exactly the
   clean head gradient that the ascent needs (the clean backbone gradient is never used);
2. update call: ``model.features`` returns the kept Φ without running the backbone, and the closure's
   backward goes through the intercepted head into the kept graph: one backbone backward.

Both calls evaluate the same loss of the same logits as the two-pass path, so the update is the same
up to floating-point rounding. When the clean call does not show the ``forward == head(features(x))``
pattern (features or head called more or less than once, or the head fed something else), the step
falls back to a full second pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from samlens.errors import ConfigError
from samlens.optim.batchnorm import snapshot
from samlens.optim.perturbation import RHO_MODES, Perturbation, phantom, shadow
from samlens.optim.wrapper import WrappedOptimizer
from samlens.validate import check_bool, check_rho

VARIANTS = ("sgd", "iw", "lr", "lsam")
Closure = Callable[[], Tensor]


class _SplitHead(torch.autograd.Function):
    """z = Φ W_fwdᵀ + b_fwd in the forward; ∂/∂Φ = g W_bwd in the backward.

    W_fwd, b_fwd and W_bwd are constants; the gradients for the head's parameters (W, b) are
    gᵀΦ and Σg — the head gradient at whatever residual the forward produced.
    """

    @staticmethod
    def forward(ctx, phi, weight, bias, w_fwd, b_fwd, w_bwd):  # type: ignore[override]
        # Under autocast compute in its dtype, as nn.Linear would, and keep those copies for the
        # backward (which runs outside autocast); autograd casts the gradients back to each input's dtype.
        device = phi.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else phi.dtype
        phi, w_fwd, w_bwd = phi.to(dtype), w_fwd.to(dtype), w_bwd.to(dtype)
        ctx.save_for_backward(phi, w_bwd)
        ctx.has_bias = bias is not None
        out = phi @ w_fwd.T
        return out + b_fwd.to(dtype) if b_fwd is not None else out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        phi, w_bwd = ctx.saved_tensors
        grad_out = grad_out.to(phi.dtype)
        grad_phi = grad_out @ w_bwd if ctx.needs_input_grad[0] else None
        grad_w = grad_out.T @ phi if ctx.needs_input_grad[1] else None
        grad_b = grad_out.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return grad_phi, grad_w, grad_b, None, None, None


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
        single_pass: run the backbone forward and backward once per step (see the module docstring);
            ``False`` runs the closure as two full passes.

    Running statistics (BatchNorm) are updated once per step, by the clean forward: the single pass
    runs the backbone forward once, and the two-pass path restores the statistics after its second
    pass. Since the head perturbation does not change the backbone's inputs, both passes would see
    the same batch statistics, so this is SAM's ``bn_policy="clean"`` and ``"perturbed"`` alike.
    """

    def __init__(
        self,
        model: nn.Module,
        base_optimizer: torch.optim.Optimizer,
        variant: str = "lsam",
        rho: float = 0.05,
        rho_mode: str = "absolute",
        single_pass: bool = True,
    ) -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}; valid choices: {', '.join(VARIANTS)}")
        if rho_mode not in RHO_MODES:
            raise ConfigError(f"unknown rho_mode {rho_mode!r}; valid choices: {', '.join(RHO_MODES)}")
        rho = check_rho(rho)
        check_bool("single_pass", single_pass)
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
        self.single_pass = single_pass
        self.last_phantom: tuple[Tensor, Tensor | None] | None = None

    @torch.no_grad()
    def phantom_head(self) -> tuple[Tensor, Tensor | None]:
        """(W̃, b̃) from the head gradients currently in ``.grad`` (zero gradient → W̃ = W)."""
        params = [t for t in (self.head.weight, self.head.bias) if t is not None]
        out = phantom(params, [t.grad for t in params], self.rho, self.rho_mode)
        return out[0], out[1] if len(out) > 1 else None

    def _split_weights(self, w_t: Tensor, b_t: Tensor | None) -> tuple[Tensor, Tensor | None, Tensor]:
        """(forward weight, forward bias, weight backpropagated to Φ) of the variant's update pass."""
        w_real = self.head.weight.detach()
        b_real = self.head.bias.detach() if self.head.bias is not None else None
        if self.variant == "lsam":  # phantom residuals, phantom backprop matrix
            return w_t, b_t, w_t
        if self.variant == "iw":  # phantom residuals, real backprop matrix
            return w_t, b_t, w_real
        return w_real, b_real, w_t  # "lr": real residuals, phantom backprop matrix

    def _split_forward(self, w_t: Tensor, b_t: Tensor | None) -> Callable[[Tensor], Tensor]:
        head = self.head
        w_fwd, b_fwd, w_bwd = self._split_weights(w_t, b_t)

        def forward(phi: Tensor) -> Tensor:
            return _SplitHead.apply(phi, head.weight, head.bias, w_fwd, b_fwd, w_bwd)

        return forward

    def step(  # type: ignore[override]
        self,
        closure: Closure | None = None,
        *,
        ascent_context: contextlib.AbstractContextManager | None = None,
    ) -> Tensor:
        """One update; returns the clean loss (a tensor, no host sync).

        ``ascent_context`` wraps the clean (ascent) call of the closure, forward and backward — under
        DDP, ``ddp_model.no_sync()``: a per-device ascent, and required by the single pass, whose
        clean backward stops at the head.
        """
        if closure is None:
            raise ValueError("the decomposition optimizers need a closure (zero_grad + forward + backward)")
        closure = torch.enable_grad()(closure)
        if self.variant == "sgd":
            loss = closure()
        elif self.single_pass:
            loss = self._single_pass(closure, ascent_context)
        else:
            with ascent_context if ascent_context is not None else contextlib.nullcontext():
                loss = closure()
            self._second_pass(closure, *self._ascent())
        self.base_optimizer.step()
        return loss

    def _ascent(self) -> tuple[Tensor, Tensor | None]:
        w_t, b_t = self.phantom_head()
        self.last_phantom = (w_t, b_t)
        return w_t, b_t

    def _single_pass(
        self, closure: Closure, ascent_context: contextlib.AbstractContextManager | None
    ) -> Tensor:
        model, head = self.model, self.head
        features = getattr(model, "features", None)
        head_forward = head.forward
        outputs: list[Tensor] = []  # what features() returned in the clean call
        inputs: list[Tensor] = []  # what the head was fed

        def clean_features(*args: Any, **kwargs: Any) -> Tensor:
            phi = features(*args, **kwargs)  # type: ignore[misc]
            outputs.append(phi)
            return phi

        def clean_head(phi: Tensor) -> Tensor:
            inputs.append(phi)
            # Φ detached: the closure's backward stops at the head and leaves the clean head
            # gradient (all the ascent needs), while Φ's graph stays intact for the update call.
            return head_forward(phi.detach())

        reusable = callable(features) and "features" not in vars(model)
        with contextlib.ExitStack() as stack:
            if reusable:
                stack.enter_context(shadow(model, "features", clean_features))
            stack.enter_context(shadow(head, "forward", clean_head))
            if ascent_context is not None:
                stack.enter_context(ascent_context)
            loss = closure()
        reusable = reusable and len(outputs) == 1 and len(inputs) == 1 and inputs[0] is outputs[0]
        phi = outputs[0] if reusable else None
        outputs.clear()
        inputs.clear()
        w_t, b_t = self._ascent()
        if phi is None:  # not the forward == head(features(x)) pattern: a full second pass
            self._second_pass(closure, w_t, b_t)
            return loss

        split_forward = self._split_forward(w_t, b_t)
        calls: list[str] = []

        def cached_features(*args: Any, **kwargs: Any) -> Tensor:
            calls.append("features")
            return phi

        def update_head(x: Tensor) -> Tensor:
            calls.append("head")
            if x is not phi:
                raise RuntimeError(
                    "single-pass decomposition: the closure fed the head something other than "
                    "model.features(x) in its second call, unlike its first; use single_pass=False"
                )
            return split_forward(x)

        with shadow(model, "features", cached_features), shadow(head, "forward", update_head):
            closure()
        if calls != ["features", "head"]:
            raise RuntimeError(
                f"single-pass decomposition: the closure's second call evaluated {calls} instead of "
                "features then head once, unlike its first; use single_pass=False"
            )
        return loss

    def _second_pass(self, closure: Closure, w_t: Tensor, b_t: Tensor | None) -> None:
        """The update gradient from a full second call of the closure (running statistics restored)."""
        buffers = snapshot(self.model)
        try:
            if self.variant == "lsam":
                head = [t for t in (self.head.weight, self.head.bias) if t is not None]
                saved = Perturbation()
                saved.assign(head, [w_t] if b_t is None else [w_t, b_t])
                try:
                    closure()
                finally:  # restore exactly (copy_, never subtraction or rebinding .data)
                    saved.restore()
            else:
                with shadow(self.head, "forward", self._split_forward(w_t, b_t)):
                    closure()
        finally:
            if buffers is not None:
                buffers.restore()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        # "lsam" used to be built as SAM on the head, whose checkpoints nest the base state.
        if isinstance(state_dict, dict) and set(state_dict) == {"base", "sam"}:
            state_dict = state_dict["base"]
        super().load_state_dict(state_dict)
