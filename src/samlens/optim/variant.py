"""The base of the SAM variants: SAM with hooks for what a variant changes, and its state in state_dict.

A variant changes one or two things about a SAM step and inherits everything else (closure and manual
forms, GradScaler, DDP, clipping, BatchNorm policy, counters):

* the ascent direction, per parameter (``_ascent_gradient``): F-SAM, random-direction SAM;
* the descent gradient, from the clean gradient ``g`` (kept by ``_ascend``) and the perturbed one in
  ``.grad`` (``_combine``): GSAM, WSAM, LookSAM.

Per-parameter tensors a variant keeps across steps (LookSAM's g_v, F-SAM's EMA) are saved in
``state_dict()["sam"]["variant"]`` keyed by the parameter's position in ``param_groups``, so a resumed
run continues bit-identically and the dict loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.optim.sam import SAM


def _world_size() -> int:
    dist = torch.distributed
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class SAMVariant(SAM):
    """SAM with a variant's hooks. Subclasses set ``name`` and override what they change."""

    name = "sam"
    #: whether the variant keeps the clean gradient for its descent (GSAM, WSAM, LookSAM)
    keeps_clean_gradient = False
    #: whether ``accumulate_step(mode="per_micro_batch")`` is defined for the variant
    per_micro_batch = True

    def __init__(self, base_optimizer: torch.optim.Optimizer, rho: float = 0.05, **sam_options: Any) -> None:
        super().__init__(base_optimizer, rho, **sam_options)
        self._clean: dict[Tensor, Tensor] | None = None

    # ------------------------------------------------------------------ hooks
    def _combine(self, clean: dict[Tensor, Tensor]) -> None:
        """Turn the perturbed gradient in ``.grad`` into the descent gradient (default: keep it)."""

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    @torch.no_grad()
    def _ascend(self, consume_grads: bool = True) -> None:
        if self.keeps_clean_gradient:
            clean = {p: p.grad.detach().clone() for p in self._params() if p.grad is not None}
            world = _world_size()
            if world > 1:
                # The descent combines g with the synchronised perturbed gradient: every device must
                # use the same g or the replicas drift apart; the ascent itself stays per device.
                for g in clean.values():
                    torch.distributed.all_reduce(g)
                    g.div_(world)
            self._clean = clean
        super()._ascend(consume_grads)

    def _descend(self) -> None:
        clean, self._clean = self._clean, None
        if clean is not None:
            with torch.no_grad():
                self._combine(clean)
        super()._descend()

    def accumulate_step(self, closure: Any, num_micro_batches: int, mode: str) -> Tensor:
        if mode == "per_micro_batch" and not self.per_micro_batch:
            raise ConfigError(
                f"optimizer {self.name!r}: accumulation mode 'per_micro_batch' is not defined for this "
                "variant (its update uses one clean gradient per step); use mode='global'"
            )
        return super().accumulate_step(closure, num_micro_batches, mode)

    # ------------------------------------------------------------------ checkpointing
    def _variant_state(self) -> dict[str, Any]:
        return {}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        pass

    def _save_tensors(self, key: str) -> dict[int, Tensor]:
        return {i: self.state[p][key].clone() for i, p in enumerate(self._params()) if key in self.state[p]}

    def _load_tensors(self, key: str, saved: dict[Any, Tensor]) -> None:
        params = self._params()
        for p in params:
            self.state[p].pop(key, None)
        for i, t in saved.items():
            p = params[int(i)]
            self.state[p][key] = torch.as_tensor(t).to(p.device).clone()

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        sd = super().state_dict()
        sd["sam"]["variant"] = {"name": self.name, **self._variant_state()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        super().load_state_dict(state_dict)
        variant = (state_dict.get("sam") or {}).get("variant")
        if variant is None:
            return
        if variant.get("name") != self.name:
            raise ConfigError(
                f"optimizer state_dict is from variant {variant.get('name')!r}, not {self.name!r}"
            )
        self._load_variant_state(variant)
