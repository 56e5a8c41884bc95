"""The perturbation core: the math every SAM-type optimizer shares, as plain functions.

ε = ρ T²g / (‖Tg‖₂ + 1e-12) is written here once (``inverse_norm``, ``ascent_scale``); the optimizer
classes (``SAM``, ``Decomposition``, ``MicroBatchSAM``) and the importance-weight probe hold state and
call these functions, like torchmetrics' functional face under its metric classes.

* ``ascent_directions`` — T²g per tensor and one norm ‖Tg‖ over all of them, in the compute dtype
  (fp32 for bf16/fp16/fp32 parameters, fp64 as soon as one parameter is fp64).
* ``radius`` — the one radius rule: ``absolute`` (‖ε‖ = ρ) or ``relative`` (‖ε‖ = ρ·‖θ‖).
* ``Perturbation`` — θ ← θ + ε with θ saved first and restored with ``copy_`` (never subtraction,
  which random-walks low-precision weights, never rebinding ``.data``, which breaks views).
* ``phantom`` — θ + ε out of place (LSAM's phantom head), each tensor rounded once to its dtype.
* ``shadow`` — replace a module's method for the duration of a block (intercepted forwards).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor

from samlens.optim.geometry import scaling, widen

RHO_MODES = ("absolute", "relative")
NORM_EPS = 1e-12


def _global_norm(identity: list[Tensor], squares: list[Tensor], device: torch.device) -> Tensor:
    """‖·‖₂ over the identity-T tensors and the already squared T-scaled ones, in the widest dtype.

    fp64 as soon as one tensor is fp64, so a huge fp64 gradient cannot overflow an fp32 square.
    """
    wide = [t.dtype for t in identity] + [q.dtype for q in squares]
    acc = torch.float64 if torch.float64 in wide else torch.float32
    norm = None
    if identity:  # one fused norm over the identity-T tensors, no temporaries
        per_tensor = torch._foreach_norm(identity)
        norm = torch.linalg.vector_norm(torch.stack([n.to(device, acc) for n in per_tensor]))
    if squares:
        if norm is not None:
            squares = [*squares, norm.square()]
        norm = torch.stack([q.to(device, acc) for q in squares]).sum().sqrt()
    return norm  # type: ignore[return-value]


def ascent_directions(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    geometry: str = "sam",
    eta: float = 0.0,
    is_weight: Sequence[bool] | None = None,
    *,
    consume_grads: bool = True,
) -> tuple[list[Tensor], Tensor]:
    """(T²g per tensor, ‖Tg‖₂ over all of them) for gradients ``grads`` already in the compute dtype.

    With ``consume_grads`` a gradient that is its parameter's ``.grad`` may be returned as the direction
    and later scaled in place (it is scratch space, zeroed next); otherwise it is copied first.
    """
    weights = [p.ndim > 1 for p in params] if is_weight is None else is_weight
    directions, identity, squares = [], [], []
    for p, g, weight in zip(params, grads, weights):
        t = scaling(p, geometry, eta, weight)
        if t is None:
            if not consume_grads and p.grad is not None and g.data_ptr() == p.grad.data_ptr():
                g = g.clone()
            identity.append(g)
            directions.append(g)
        else:
            tg = g * t
            squares.append(tg.pow(2).sum())
            directions.append(tg.mul_(t))  # T²g
    return directions, _global_norm(identity, squares, params[0].device)


def inverse_norm(norm: Tensor, *, sync: bool) -> tuple[float | Tensor, bool | Tensor]:
    """(1 / (‖g‖ + 1e-12), whether ‖g‖ is finite).

    ``sync``: one host read, so both are Python values (on the CPU a read is free and each
    scalar-tensor op costs as much as a small kernel). Otherwise both stay on the device and the
    scale is 0 where the norm is not finite, so no host synchronisation happens at all.
    """
    if sync:
        value = norm.item()
        if not math.isfinite(value):
            return 0.0, False
        return 1.0 / (value + NORM_EPS), True
    finite = torch.isfinite(norm)
    return torch.where(finite, 1.0 / (norm + NORM_EPS), torch.zeros_like(norm)), finite


def ascent_scale(norm: Tensor, radius: float | Tensor) -> Tensor:
    """ρ / (‖g‖ + 1e-12), elementwise over a tensor of norms (e.g. one per micro-batch)."""
    return 1.0 / (norm + NORM_EPS) * radius


def radius(rho: float, rho_mode: str, params: Iterable[Tensor]) -> float | Tensor:
    """The radius ‖ε‖: ``rho`` (absolute), or ``rho·‖θ‖₂`` over ``params`` in the compute dtype (relative)."""
    if rho_mode == "absolute":
        return rho
    if rho_mode != "relative":
        raise ValueError(f"unknown rho_mode {rho_mode!r}; valid choices: {', '.join(RHO_MODES)}")
    size = sum(widen(p.detach()).pow(2).sum() for p in params)
    return torch.as_tensor(size).sqrt() * rho


@torch.no_grad()
def phantom(
    params: Sequence[Tensor], grads: Sequence[Tensor | None], rho: float, rho_mode: str = "absolute"
) -> list[Tensor]:
    """θ + ρ g/(‖g‖ + 1e-12) out of place (a missing gradient is zero), each in its parameter's dtype.

    Computed in the compute dtype and rounded once, so a bf16 head moves by one rounding.
    """
    wide = [widen((g if g is not None else torch.zeros_like(p)).detach()) for p, g in zip(params, grads)]
    scale = ascent_scale(_global_norm(wide, [], params[0].device), radius(rho, rho_mode, params))
    return [(widen(p.detach()) + scale * g).to(p.dtype) for p, g in zip(params, wide)]


class Perturbation:
    """θ ← θ + ε in place, with θ saved first for an exact restore.

    ``store`` maps each parameter to a dict where its saved copy lives (an optimizer's ``state``, so
    pickling and deepcopy carry it over); the copy is reused across steps.
    """

    def __init__(self, store: MutableMapping[Tensor, dict[str, Any]] | None = None) -> None:
        self.store: MutableMapping[Tensor, dict[str, Any]] = {} if store is None else store
        self.params: list[Tensor] = []

    def _saved(self, p: Tensor) -> Tensor:
        state = self.store.setdefault(p, {})
        old = state.get("old_p")
        if old is None or old.shape != p.shape or old.dtype != p.dtype or old.device != p.device:
            old = state["old_p"] = torch.empty_like(p, memory_format=torch.preserve_format)
        return old

    @torch.no_grad()
    def save(self, params: list[Tensor]) -> list[Tensor]:
        """Save ``params`` (they are restored by ``restore``); returns the saved copies."""
        olds = [self._saved(p) for p in params]
        torch._foreach_copy_(olds, params)
        self.params = params
        return olds

    @torch.no_grad()
    def assign(self, params: list[Tensor], values: Sequence[Tensor]) -> None:
        """Save ``params``, then set them to ``values`` (e.g. a phantom head computed out of place)."""
        self.save(params)
        torch._foreach_copy_(params, list(values))

    @torch.no_grad()
    def apply(
        self,
        params: list[Tensor],
        directions: list[Tensor],
        rhos: Sequence[float],
        inv_norm: float | Tensor,
        *,
        sanitise: bool,
    ) -> None:
        """θ ← θ + ρ·inv_norm·d per tensor (``directions`` are scratch: scaled in place).

        ``sanitise``: ``inv_norm`` is a device tensor that is 0 where the norm was not finite, so the
        directions' non-finite entries are zeroed. Tensors already in their compute dtype on the
        norm's device go through fused foreach kernels, bucketed by rho and dtype; everything else
        (other devices, low precision) takes the per-tensor path, low precision with one rounding.
        """
        olds = self.save(params)
        device = params[0].device
        scales: dict[float, float | Tensor] = {}  # one scale per distinct rho
        buckets: dict[tuple[float, torch.dtype], tuple[list[Tensor], list[Tensor]]] = {}
        for p, d, old, rho in zip(params, directions, olds, rhos):
            if rho not in scales:
                scales[rho] = inv_norm * rho
            if sanitise:  # only non-finite when the scale is 0
                torch.nan_to_num_(d, nan=0.0, posinf=0.0, neginf=0.0)
            if p.dtype == d.dtype and p.device == device:
                bucket = buckets.setdefault((rho, d.dtype), ([], []))
                bucket[0].append(p)
                bucket[1].append(d)
                continue
            scale = scales[rho]
            step = d * (scale.to(p.device) if isinstance(scale, Tensor) else scale)
            if p.dtype == d.dtype:
                p.add_(step)
            else:  # low precision (computed in fp32): one rounding from the fp32 result, not two
                p.copy_(old.float().add_(step))
        for (rho, dtype), (ps, ds) in buckets.items():
            scale = scales[rho]
            if isinstance(scale, Tensor):
                torch._foreach_mul_(ds, scale.to(dtype))
                torch._foreach_add_(ps, ds)
            else:
                torch._foreach_add_(ps, ds, alpha=scale)

    @torch.no_grad()
    def restore(self) -> None:
        """θ back to the saved values, bit for bit."""
        if self.params:
            torch._foreach_copy_(self.params, [self.store[p]["old_p"] for p in self.params])
        self.params = []


@contextlib.contextmanager
def shadow(obj: Any, name: str, value: Callable[..., Any]) -> Iterator[None]:
    """Shadow a method of ``obj`` with an instance attribute for the duration of the block."""
    saved = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if saved is None:
            delattr(obj, name)
        else:
            setattr(obj, name, saved)
