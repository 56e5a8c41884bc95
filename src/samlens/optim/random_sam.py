"""Controls for which part of SAM matters.

* ``random_sam`` — ε = ρ T²u/‖Tu‖ with u ~ N(0, I) in place of the gradient, the same radius as SAM
  (is the adversarial direction needed?). u comes from the optimizer's own seeded generator, whose
  state is in ``state_dict``, so a resumed run draws the same directions. The clean pass still runs:
  the step returns the clean loss and the BatchNorm policies mean what they mean for SAM.
* ``sam_on`` — SAM on the normalisation layers' parameters only (SAM-ON, Mueller et al., NeurIPS
  2023), beside ``lsam``'s head only; every parameter still steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from samlens.errors import ConfigError
from samlens.optim.geometry import compute_dtype
from samlens.optim.variant import SAMVariant
from samlens.validate import check_int

NORM_LAYERS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, InstanceNorm*, SyncBatchNorm
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class RandomSAM(SAMVariant):
    """SAM with a Gaussian direction; ``seed`` seeds its generator."""

    name = "random_sam"

    def __init__(
        self, base_optimizer: torch.optim.Optimizer, rho: float = 0.05, *, seed: int = 0, **sam_options: Any
    ) -> None:
        self.seed = check_int("seed", seed, low=0)
        super().__init__(base_optimizer, rho, **sam_options)
        self.generator = torch.Generator().manual_seed(self.seed)

    def _direction(self, p: Tensor, g: Tensor) -> Tensor:
        """u for parameter ``p`` (``g`` is its ascent gradient, unused by the Gaussian control)."""
        u = torch.randn(p.shape, generator=self.generator, dtype=compute_dtype(p.dtype))
        return u.to(p.device)

    def _ascent_gradient(self, p: Tensor, group: dict[str, Any], inv_scale: Tensor | None) -> Tensor:
        return self._direction(p, super()._ascent_gradient(p, group, inv_scale))

    def _variant_state(self) -> dict[str, Any]:
        return {"seed": self.seed, "generator": self.generator.get_state()}

    def _load_variant_state(self, state: dict[str, Any]) -> None:
        if "generator" in state:
            self.generator.set_state(torch.as_tensor(state["generator"], dtype=torch.uint8).clone())


def is_norm_layer(name: str, module: nn.Module) -> bool:
    """SAM-ON's selection: the affine parameters of normalisation layers."""
    return isinstance(module, NORM_LAYERS)


def sam_on_selection(model: nn.Module, options: dict[str, Any]) -> None:
    if not any(list(m.parameters(recurse=False)) for n, m in model.named_modules() if is_norm_layer(n, m)):
        raise ConfigError("optimizer 'sam_on' needs a model with normalization-layer parameters")
    options["params_to_perturb"] = is_norm_layer
