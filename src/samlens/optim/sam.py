"""Sharpness-Aware Minimization as a wrapper around any torch optimizer.

One SAM step: g = ∇L(θ); ε = ρ T²g / (‖Tg‖₂ + 1e-12) over all perturbed parameters; θ̃ = θ + ε;
the update gradient is ∇L(θ̃); θ is restored exactly; the base optimizer steps with that gradient.

Design choices (each guards against a failure seen in other implementations):

* ``param_groups`` *is* the base optimizer's list (``WrappedOptimizer``), so LR schedulers work on
  either object.
* ``state_dict()`` is torch's layout — the base optimizer's ``state`` (momentum, Adam moments) and
  ``param_groups`` (with each group's ``rho``) — plus a ``sam`` entry with SAM's counters, so a
  resumed run continues bit-identically, ``torch.distributed.checkpoint`` can handle it, and it loads
  with ``torch.load(..., weights_only=True)``.
* θ is saved before the ascent and restored with ``copy_`` — never by subtraction (which random-walks
  low-precision weights) and never by rebinding ``.data`` (which breaks views into flat buffers).
* The ascent is computed in the wider of the parameter dtype and fp32 (fp32 for bf16/fp16, fp64
  for fp64 models) and applied with a single rounding.
* The hot path has no host synchronisation; the only one is the optional non-finite check before
  the base step (``nonfinite="skip"``), the same read GradScaler performs.
* Parameters without a gradient in a pass are simply not perturbed; the base optimizer still steps
  whatever has a gradient.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from samlens.optim.accumulation import accumulate
from samlens.optim.batchnorm import BN_POLICIES, BufferSnapshot, running_buffers, snapshot
from samlens.optim.geometry import DEFAULT_ETA, GEOMETRIES, compute_dtype, is_weight_tensor, widen
from samlens.optim.perturbation import Perturbation, ascent_directions, inverse_norm
from samlens.optim.rng import RNGState
from samlens.optim.selection import ParamSelector, select_parameters
from samlens.optim.wrapper import WrappedOptimizer, base_state_dict
from samlens.validate import check_choice, check_positive_int, check_real, check_rho

Closure = Callable[[], Tensor]
NONFINITE_POLICIES = ("skip", "ignore")


class SAM(WrappedOptimizer):
    """SAM around ``base_optimizer``.

    Args:
        base_optimizer: any ``torch.optim.Optimizer`` instance; it owns weight decay and momentum.
        rho: neighbourhood radius (default for every param group; a group may set its own ``rho``).
        geometry: ``"sam"``, ``"asam_official"`` or ``"asam_common"`` (see ``samlens.optim.geometry``).
        eta: ASAM's η; defaults to 0.01 for ``asam_official`` and 0 otherwise.
        model: the module being trained. Needed for the BatchNorm policy, for parameter names
            (ASAM's weight rule) and for a module-predicate ``params_to_perturb``.
        params_to_perturb: perturb only these parameters (an iterable of tensors, or a predicate
            ``(module_name, module) -> bool`` selecting modules of ``model``); all parameters still
            step. LSAM is ``params_to_perturb=model.head.parameters()``.
        ascent_weight_decay: add each group's ``weight_decay · w`` to the ascent gradient.
        interval: periodic SAM — a SAM step every ``interval`` steps, one clean pass otherwise.
        bn_policy: ``"clean"`` (default), ``"perturbed"``, ``"both"`` or ``"frozen"``. Acts on the
            running buffers of ``model``; without ``model`` nothing can be done and it is ``"both"``.
        replay_rng: restore the RNG state before the perturbed pass (same dropout masks).
        grad_scaler: a ``torch.amp.GradScaler``; the closure must call ``scaler.scale(loss).backward()``.
            SAM then unscales per pass, skips the ascent on inf in pass 1, restores and skips the
            step on inf in pass 2, and calls ``scaler.update()`` once per step.
        nonfinite: ``"skip"`` (restore, skip the base step, count it) or ``"ignore"`` (no check and
            no host sync at all, for fully captured/compiled steps).
        max_grad_norm: clip the update (descent) gradient to this global L2 norm with
            ``torch.nn.utils.clip_grad_norm_`` before the base step — after unscaling under
            ``grad_scaler``, and on periodic-SAM clean steps too. The ascent gradient is not clipped:
            ε is normalised, so clipping would not change it. ``None`` (default): no clipping.
    """

    def __init__(
        self,
        base_optimizer: torch.optim.Optimizer,
        rho: float = 0.05,
        *,
        geometry: str = "sam",
        eta: float | None = None,
        model: nn.Module | None = None,
        params_to_perturb: ParamSelector | None = None,
        ascent_weight_decay: bool = False,
        interval: int = 1,
        bn_policy: str = "clean",
        replay_rng: bool = False,
        grad_scaler: torch.amp.GradScaler | None = None,
        nonfinite: str = "skip",
        max_grad_norm: float | None = None,
    ) -> None:
        super().__init__(base_optimizer)  # type checks; shares param_groups
        rho = check_rho(rho)
        geometry = check_choice("geometry", geometry, GEOMETRIES)
        eta = check_real("eta", DEFAULT_ETA[geometry] if eta is None else eta, low=0.0)
        interval = check_positive_int("interval", interval)
        bn_policy = check_choice("bn_policy", bn_policy, BN_POLICIES)
        nonfinite = check_choice("nonfinite policy", nonfinite, NONFINITE_POLICIES)
        if max_grad_norm is not None:
            max_grad_norm = check_real("max_grad_norm", max_grad_norm, low=0.0, low_open=True)
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")

        for group in self.param_groups:
            group.setdefault("rho", float(rho))
        self.geometry = geometry
        self.eta = float(eta)
        self.model = model
        self.ascent_weight_decay = ascent_weight_decay
        self.interval = interval
        self.bn_policy = bn_policy if model is not None else "both"
        self.replay_rng = replay_rng
        self.grad_scaler = grad_scaler
        self.nonfinite = nonfinite
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)

        all_params = [p for g in self.param_groups for p in g["params"]]
        # Keyed by the tensors themselves (hashed by identity, like torch's optimizer state), so
        # that pickle and copy.deepcopy carry the sets over to the copied parameters.
        chosen = select_parameters(params_to_perturb, model, all_params)
        self._perturb: set[Tensor] = {p for p in all_params if id(p) in chosen}
        names = {id(p): n for n, p in model.named_parameters()} if model is not None else {}
        self._is_weight: dict[Tensor, bool] = {p: is_weight_tensor(names.get(id(p)), p) for p in all_params}

        # Counters: host ints for the schedule, device tensors for events found on the device.
        self._step_count = 0
        self._sam_steps = 0
        self._skipped = 0
        self._ascent_skipped = torch.zeros((), dtype=torch.int64)
        self._pre_snapshot: BufferSnapshot | None = None
        self._pending_snapshot: BufferSnapshot | None = None
        self._perturbation = Perturbation(self.state)  # θ is saved in state[p]["old_p"]
        self.examples_per_perturbation: int | None = None

    # ------------------------------------------------------------------ shared optimizer state
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        rho = param_group.pop("rho", self.param_groups[0]["rho"] if self.param_groups else 0.05)
        self.base_optimizer.add_param_group(param_group)
        self.param_groups[-1]["rho"] = rho
        for p in self.param_groups[-1]["params"]:
            self._perturb.add(p)
            self._is_weight[p] = is_weight_tensor(None, p)

    # ------------------------------------------------------------------ public counters
    @property
    def is_sam_step(self) -> bool:
        """Whether the next step is a SAM step (two passes) under periodic SAM."""
        return self._step_count % self.interval == 0

    @property
    def steps(self) -> int:
        return self._step_count

    @property
    def sam_steps(self) -> int:
        return self._sam_steps

    @property
    def skipped_steps(self) -> int:
        """Steps whose update gradient was non-finite (restored and not applied)."""
        return self._skipped

    @property
    def skipped_ascents(self) -> int:
        """SAM steps whose clean gradient was non-finite, so no perturbation was applied (syncs)."""
        return int(self._ascent_skipped)

    # ------------------------------------------------------------------ the SAM step
    def _perturbable(self) -> list[tuple[Tensor, dict[str, Any]]]:
        return [
            (p, g)
            for g in self.param_groups
            for p in g["params"]
            if p in self._perturb and p.grad is not None
        ]

    def _ascent_gradient(self, p: Tensor, group: dict[str, Any], inv_scale: Tensor | None) -> Tensor:
        g = widen(p.grad.detach())
        if inv_scale is not None:
            g = g * inv_scale.to(g.dtype)
        if self.ascent_weight_decay and group.get("weight_decay", 0.0):
            g = g.add(widen(p.detach()), alpha=group["weight_decay"])
        return g

    @torch.no_grad()
    def _ascend(self, consume_grads: bool = True) -> None:
        """θ ← θ + ε from the gradients in ``.grad``; saves θ for an exact restore.

        With ``consume_grads`` gradients already in the compute dtype are used as scratch space
        (they are zeroed next).
        """
        pairs = self._perturbable()
        self._perturbation.params = []
        if not pairs:
            return
        inv_scale = None
        if self.grad_scaler is not None and self.grad_scaler.is_enabled() and self.ascent_weight_decay:
            inv_scale = self.grad_scaler._scale.double().reciprocal()  # no sync
        params = [p for p, _ in pairs]
        directions, norm = ascent_directions(
            params,
            [self._ascent_gradient(p, group, inv_scale) for p, group in pairs],
            self.geometry,
            self.eta,
            [self._is_weight[p] for p in params],
            consume_grads=consume_grads,
        )
        # On the CPU a non-finite norm skips the ascent outright. Elsewhere, and whenever the step
        # must stay sync-free (nonfinite="ignore", compiling), the directions are sanitised instead.
        sanitise = (
            params[0].device.type != "cpu" or self.nonfinite == "ignore" or torch.compiler.is_compiling()
        )
        inv_norm, finite = inverse_norm(norm, sync=not sanitise)
        if finite is False:
            self._ascent_skipped += 1
            return
        if isinstance(finite, Tensor):
            self._ascent_skipped += (~finite).to(self._ascent_skipped.device, torch.int64)
        rhos = [group["rho"] for _, group in pairs]
        self._perturbation.apply(params, directions, rhos, inv_norm, sanitise=sanitise)

    def _restore(self) -> None:
        self._perturbation.restore()

    def _grads_finite(self) -> bool:
        """One host sync: whether every gradient entry is finite.

        A NaN or inf entry makes any sum over it non-finite. On the CPU the plain sums are the
        cheapest reduction (about half the time of the norms, and they overflow only where the
        norms' squares would have overflowed first); elsewhere one fused ``_foreach_norm`` kernel
        beats a launch per tensor.
        """
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return True
        device = grads[0].device
        # Reduce in the compute dtype: an fp64 gradient beyond fp32's range is finite, not inf.
        acc = torch.float64 if any(g.dtype == torch.float64 for g in grads) else torch.float32
        if all(g.device.type == "cpu" for g in grads):
            totals = [g.detach().sum(dtype=compute_dtype(g.dtype)) for g in grads]
        else:
            wide = [widen(g.detach()) for g in grads]
            totals = torch._foreach_norm(wide)
        return math.isfinite(torch.stack([t.to(device, acc) for t in totals]).sum().item())

    def _clip(self) -> None:
        """Clip the update gradient (no host sync: clip_grad_norm_ scales by a device tensor)."""
        if self.max_grad_norm is None:
            return
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        if params:
            torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)

    def _descend(self) -> None:
        """Base step with the gradients in ``.grad`` (the parameters are already restored)."""
        scaler = self.grad_scaler
        if scaler is not None and scaler.is_enabled():
            if self.max_grad_norm is not None:
                # Clip true gradients; scaler.step() sees that they are unscaled and still skips
                # the step when unscale_ found an inf.
                scaler.unscale_(self.base_optimizer)
                self._clip()
            scaler.step(self.base_optimizer)
            found = getattr(scaler, "_found_inf_per_device", None)
            skipped = None
            if found is not None:
                per_device = found(self.base_optimizer)
                if per_device:
                    skipped = sum(v.to("cpu") for v in per_device.values())
            scaler.update()
            if skipped is not None:
                self._skipped += int(skipped > 0)
        elif self.nonfinite == "skip" and not self._grads_finite():
            self._skipped += 1
        else:
            self._clip()
            self.base_optimizer.step()
        self._step_count += 1

    def _bn_snapshot(self) -> BufferSnapshot | None:
        if self.model is None or self.bn_policy == "both":
            return None
        return snapshot(self.model)

    def _before_clean_pass(self) -> None:
        if self.bn_policy in ("perturbed", "frozen"):
            self._pre_snapshot = self._bn_snapshot()

    def _after_clean_pass(self) -> None:
        """Decide which running statistics survive the step (see ``samlens.optim.batchnorm``)."""
        pre, self._pre_snapshot = self._pre_snapshot, None
        needs_pre = self.bn_policy in ("perturbed", "frozen") and self.model is not None
        if needs_pre and pre is None and running_buffers(self.model):
            raise RuntimeError(
                f"bn_policy={self.bn_policy!r} needs a snapshot taken before the clean pass: "
                "use step(closure), or call begin_step() before the clean forward"
            )
        if self.bn_policy == "perturbed" and pre is not None:
            pre.restore()  # forget the clean pass; the perturbed pass updates from here
        elif self.bn_policy == "frozen":
            self._pending_snapshot = pre
        elif self.bn_policy == "clean":
            self._pending_snapshot = self._bn_snapshot()

    def _after_perturbed_pass(self) -> None:
        self._restore()
        if self._pending_snapshot is not None:
            self._pending_snapshot.restore()
            self._pending_snapshot = None

    # manual form ---------------------------------------------------------------------------
    def begin_step(self) -> None:
        """Optional, before the clean forward in the manual form: needed by bn_policy perturbed/frozen."""
        self._before_clean_pass()

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> bool:
        """After the clean backward: perturb θ and zero the gradients.

        Returns True when a perturbed backward and ``second_step()`` must follow. Under periodic SAM
        a non-SAM step returns False after stepping the base optimizer with the clean gradient.
        """
        if not self.is_sam_step:
            self._pre_snapshot = None
            self._descend()
            return False
        self._after_clean_pass()
        self._ascend(consume_grads=zero_grad)
        if zero_grad:
            self.zero_grad(set_to_none=True)
        return True

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """After the perturbed backward: restore θ exactly and step the base optimizer."""
        self._after_perturbed_pass()
        self._descend()
        self._sam_steps += 1
        if zero_grad:
            self.zero_grad(set_to_none=True)

    # closure form --------------------------------------------------------------------------
    def step(  # type: ignore[override]
        self,
        closure: Closure | None = None,
        *,
        ascent_context: contextlib.AbstractContextManager | None = None,
    ) -> Tensor:
        """Run a whole SAM step and return the clean loss (like ``torch.optim.LBFGS``).

        ``closure`` zeroes the gradients, runs forward and backward, and returns the loss; it is called
        twice on a SAM step and once on a periodic-SAM skip step. ``ascent_context`` wraps the clean
        (ascent) pass, forward and backward — e.g. DDP's ``no_sync()`` for per-device ascent.
        """
        if closure is None:
            if self._is_state_initialisation():
                self.base_optimizer.step()
                return None  # type: ignore[return-value]
            raise ValueError(
                "SAM.step needs a closure (zero_grad + forward + backward, returning the loss); "
                "for a custom loop use first_step() and second_step()"
            )
        closure = torch.enable_grad()(closure)
        if not self.is_sam_step:
            loss = closure()
            self._descend()
            return loss
        self._before_clean_pass()
        rng = (
            RNGState({p.device for g in self.param_groups for p in g["params"]}) if self.replay_rng else None
        )
        with ascent_context if ascent_context is not None else contextlib.nullcontext():
            loss = closure()
        self.first_step()
        if rng is not None:
            rng.restore()
        closure()
        self.second_step()
        return loss

    @torch.no_grad()
    def _is_state_initialisation(self) -> bool:
        """Whether a closure-less step is the optimizer-state initialisation of
        ``torch.distributed.checkpoint.state_dict`` (every learning rate 0, every gradient zero):
        a base step that cannot move any parameter, so it is passed through."""
        for group in self.param_groups:
            if float(group.get("lr", 1.0)) != 0.0:
                return False
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        return bool(grads) and not any(bool(g.any()) for g in grads)

    def accumulate_step(self, closure: Callable[[int], Tensor], num_micro_batches: int, mode: str) -> Tensor:
        """A SAM step over ``num_micro_batches`` micro-batches (gradient accumulation).

        ``closure(i)`` runs forward + backward of micro-batch ``i``'s mean loss WITHOUT zeroing
        gradients and returns that loss. Modes:

        * ``"per_micro_batch"`` — m-SAM: each micro-batch gets its own ε and its own perturbed gradient;
          the update is their mean.
        * ``"global"`` — exact large-batch SAM: ε from the mean clean gradient over all micro-batches,
          then the mean perturbed gradient at that single θ̃.

        Returns the mean clean loss. Running statistics follow ``bn_policy`` in each pass.
        """
        return accumulate(self, closure, num_micro_batches, mode)

    # ------------------------------------------------------------------ checkpointing
    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        """torch's layout (``state``, ``param_groups``) of the base optimizer plus ``sam``: counters and
        settings. Only tensors, numbers, strings, lists and dicts (``weights_only=True`` loads it)."""
        return {
            **self.base_optimizer.state_dict(),
            "sam": {
                "step_count": self._step_count,
                "sam_steps": self._sam_steps,
                "skipped": self._skipped,
                "ascent_skipped": self._ascent_skipped.clone(),
                "interval": self.interval,
                "geometry": self.geometry,
            },
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        """Load ``state_dict()``'s layout, the earlier ``{"base", "sam"}`` layout, or a plain optimizer
        state dict (e.g. from ``torch.distributed.checkpoint``), which keeps SAM's counters as they are."""
        self.base_optimizer.load_state_dict(base_state_dict(state_dict))
        sam = state_dict.get("sam")
        if sam is None:
            if self.interval > 1:
                warnings.warn(
                    "the optimizer state_dict has no 'sam' entry: the periodic-SAM schedule "
                    f"(interval={self.interval}) continues from step {self._step_count}",
                    stacklevel=2,
                )
            return
        self._step_count = int(sam["step_count"])
        self._sam_steps = int(sam["sam_steps"])
        self._skipped = int(sam["skipped"])
        self._ascent_skipped = torch.as_tensor(sam["ascent_skipped"], dtype=torch.int64).clone()

    def __repr__(self) -> str:
        rhos = sorted({g["rho"] for g in self.param_groups})
        return (
            f"SAM(rho={rhos[0] if len(rhos) == 1 else rhos}, geometry={self.geometry!r}, "
            f"interval={self.interval}, bn_policy={self.bn_policy!r}, base={self.base_optimizer!r})"
        )
