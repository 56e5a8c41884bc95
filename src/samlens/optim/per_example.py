"""m-SAM vectorised over micro-batches, and exact 1-SAM (m = 1) in two batched passes.

m-SAM splits the batch into micro-batches of m examples; each gets its own ascent
ε_k = ρ g_k / (‖g_k‖ + 1e-12) (g_k the gradient of the micro-batch's mean loss) and the update is the
mean over micro-batches of ∇L_k(θ + ε_k). The closure's loss must be the batch mean of per-example
losses and the closure must call the model once. Two engines, both one clean + one perturbed pass:

* ``ghost`` — networks whose parameters all live in ``nn.Linear`` layers (any parameter-free
  activations in between). A linear layer's micro-batch gradient is Σ_j δ_j a_jᵀ, so its norm is
  Σ_{j,j'} (δ_jᵀδ_j')(a_jᵀa_j') — for m = 1 the "ghost norm" ‖δ_i‖²‖a_i‖² — and the perturbed layer
  acts on an input a'_i of micro-batch k as W a'_i + b + c_k Σ_{j∈k} δ_j (a_jᵀa'_i + 1). Memory is
  O(n·m) per layer, never a per-example copy of the weights. Frozen tensors
  (``requires_grad=False``) are left out of the norm and the perturbation, as in ``vmap``.
* ``vmap`` — any other model: ``torch.func.vmap`` over micro-batches with one copy of the
  parameters per micro-batch (memory n/m × model size).

BatchNorm couples the examples of a batch, so m-SAM is not defined for it: a clear error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from samlens.errors import ConfigError
from samlens.optim.perturbation import ascent_scale, shadow
from samlens.optim.wrapper import WrappedOptimizer
from samlens.validate import check_positive_int, check_rho

MODES = ("auto", "ghost", "vmap")
Closure = Callable[[], Tensor]


def supports_ghost(model: nn.Module) -> bool:
    """Whether every trainable parameter of ``model`` belongs to an ``nn.Linear``."""
    for module in model.modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if own and not isinstance(module, nn.Linear):
            return False
    return True


class MicroBatchSAM(WrappedOptimizer):
    """m-SAM around any base optimizer (``m = 1``: exact per-example 1-SAM).

    Args:
        model: the module the closure calls (once per closure).
        base_optimizer: the descent optimizer over ``model``'s parameters.
        m: micro-batch size; the batch size must be a multiple of it.
        rho: ascent radius per micro-batch.
        mode: ``auto`` (ghost when every parameter is in a Linear layer, else vmap), ``ghost``, ``vmap``.
    """

    def __init__(
        self,
        model: nn.Module,
        base_optimizer: torch.optim.Optimizer,
        m: int = 1,
        rho: float = 0.05,
        mode: str = "auto",
    ) -> None:
        m, rho = check_positive_int("m", m), check_rho(rho)
        if mode not in MODES:
            raise ConfigError(f"unknown mode {mode!r}; valid choices: {', '.join(MODES)}")
        bn = [n for n, mod in model.named_modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)]
        if bn:
            raise ConfigError(
                f"m-SAM/1-SAM is undefined for BatchNorm models (BatchNorm couples the examples of a batch; "
                f"found {bn[0] or 'the model'}); use norm='group' or 'none'"
            )
        if mode == "auto":
            mode = "ghost" if supports_ghost(model) else "vmap"
        elif mode == "ghost" and not supports_ghost(model):
            raise ConfigError("mode='ghost' needs every trainable parameter in an nn.Linear; use mode='vmap'")
        super().__init__(base_optimizer)
        self.model, self.m, self.rho, self.mode = model, m, float(rho), mode

    def _groups(self, n: int) -> int:
        if n % self.m:
            raise ConfigError(f"batch size {n} is not a multiple of the micro-batch size m={self.m}")
        return n // self.m

    def step(self, closure: Closure | None = None) -> Tensor:  # type: ignore[override]
        """One m-SAM update; returns the clean loss."""
        if closure is None:
            raise ValueError("m-SAM needs a closure (zero_grad + forward + backward)")
        engine = self._ghost_step if self.mode == "ghost" else self._vmap_step
        loss = engine(closure)
        self.base_optimizer.step()
        return loss

    # ------------------------------------------------------------------ ghost engine (Linear layers)
    def _ghost_step(self, closure: Closure) -> Tensor:
        linears = [mod for mod in self.model.modules() if isinstance(mod, nn.Linear)]
        saved: dict[nn.Linear, list[Tensor]] = {}

        def capture(module: nn.Linear, inputs: tuple[Tensor, ...], output: Tensor) -> None:
            a = inputs[0]
            if a.ndim != 2:
                raise ConfigError("ghost 1-SAM needs 2-D inputs to every Linear layer; use mode='vmap'")
            if module in saved:
                raise ConfigError("ghost 1-SAM needs each Linear layer to be called once per forward")
            saved[module] = [a.detach()]
            if output.requires_grad:
                output.register_hook(lambda g, module=module: saved[module].append(g.detach()))

        handles = [mod.register_forward_hook(capture) for mod in linears]
        try:
            with torch.enable_grad():
                loss = closure()
        finally:
            for h in handles:
                h.remove()
        # A layer's output can carry a gradient (δ) while its own weight or bias is frozen (a
        # trainable layer lies below it); frozen tensors take no part in the norm or the ascent.
        used = {
            mod: (*v, mod.weight.requires_grad, mod.bias is not None and mod.bias.requires_grad)
            for mod, v in saved.items()
            if len(v) == 2 and (mod.weight.requires_grad or (mod.bias is not None and mod.bias.requires_grad))
        }
        if not used:
            raise ConfigError("the closure produced no gradient through any trainable Linear layer")
        n = next(iter(used.values()))[0].shape[0]
        k = self._groups(n)
        # δ is ∂(batch mean)/∂z; the micro-batch mean's gradient is n/m times that.
        acc = torch.promote_types(loss.dtype, torch.float32)  # fp32 or better for the bookkeeping
        grams, norm_sq = {}, torch.zeros(k, dtype=acc, device=loss.device)
        for mod, (a, delta, weight_on, bias_on) in used.items():
            a_k = a.reshape(k, self.m, -1)
            d_k = (delta * (n / self.m)).reshape(k, self.m, -1)
            gram_d = d_k @ d_k.transpose(1, 2)
            if weight_on:
                gram_a = a_k @ a_k.transpose(1, 2)
                norm_sq = norm_sq + (gram_a * gram_d).sum((1, 2)).to(acc)
            if bias_on:
                norm_sq = norm_sq + gram_d.sum((1, 2)).to(acc)
            grams[mod] = (a_k, d_k, weight_on, bias_on)
        coef = ascent_scale(norm_sq.sqrt(), self.rho)  # [k]

        def perturbed_forward(mod: nn.Linear) -> Callable[[Tensor], Tensor]:
            a_k, d_k, weight_on, bias_on = grams[mod]
            c = coef.to(a_k.dtype).view(k, 1, 1)

            def forward(x: Tensor) -> Tensor:
                out = F.linear(x, mod.weight, mod.bias)
                if weight_on:  # a'_i · a_j within a group (+1 for a perturbed bias)
                    overlap = x.reshape(k, self.m, -1) @ a_k.transpose(1, 2)
                    if bias_on:
                        overlap = overlap + 1
                else:  # only the bias moves: every a'_i sees the same shift
                    overlap = x.new_ones(k, self.m, self.m)
                return out + (c * overlap @ d_k).reshape(out.shape)

            return forward

        with contextlib.ExitStack() as stack, torch.enable_grad():
            for mod in used:
                stack.enter_context(shadow(mod, "forward", perturbed_forward(mod)))
            closure()
        return loss

    # ------------------------------------------------------------------ vmap engine (any layer)
    def _vmap_step(self, closure: Closure) -> Tensor:
        model = self.model
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        params = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        original = type(model).forward
        state: dict[str, Any] = {"inside": False}

        def batched_forward(make_params: Callable[[int], dict[str, Tensor]]) -> Callable[[Tensor], Tensor]:
            def forward(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
                if state["inside"]:  # functional_call re-enters model(...) on one micro-batch
                    return original(model, x, *args, **kwargs)
                k = self._groups(x.shape[0])
                per_group = make_params(k)
                frozen = {n: p for n, p in params.items() if n not in per_group}

                def one(group_params: dict[str, Tensor], xk: Tensor) -> Tensor:
                    return functional_call(model, ({**frozen, **group_params}, buffers), (xk, *args), kwargs)

                state["inside"] = True
                try:
                    out = vmap(one, randomness="different")(per_group, x.reshape(k, self.m, *x.shape[1:]))
                finally:
                    state["inside"] = False
                return out.reshape(x.shape[0], *out.shape[2:])

            return forward

        copies: dict[str, Tensor] = {}

        def clean_params(k: int) -> dict[str, Tensor]:
            for n in names:
                copies[n] = (
                    params[n].detach().unsqueeze(0).repeat(k, *([1] * params[n].ndim)).requires_grad_()
                )
            return copies

        with shadow(model, "forward", batched_forward(clean_params)), torch.enable_grad():
            loss = closure()
        with torch.no_grad():
            k = next(iter(copies.values())).shape[0]
            n = k * self.m
            grads = {
                n_: (c.grad if c.grad is not None else torch.zeros_like(c)) * (n / self.m)
                for n_, c in copies.items()
            }
            acc = torch.promote_types(loss.dtype, torch.float32)
            norm_sq = sum(g.to(acc).pow(2).flatten(1).sum(1) for g in grads.values())
            coef = ascent_scale(norm_sq.sqrt(), self.rho)
            eps = {
                n_: (coef.view(-1, *([1] * (g.ndim - 1))) * g.to(acc)).to(g.dtype) for n_, g in grads.items()
            }

        def perturbed_params(k_: int) -> dict[str, Tensor]:
            if k_ != k:
                raise ConfigError("the batch changed between the clean and the perturbed pass")
            return {n_: params[n_].unsqueeze(0) + eps[n_] for n_ in names}

        with shadow(model, "forward", batched_forward(perturbed_params)), torch.enable_grad():
            closure()
        return loss
