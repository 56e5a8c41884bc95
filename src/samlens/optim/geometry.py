"""Perturbation geometries: how the ascent direction ε is shaped.

All three solve max_{‖T⁻¹ε‖₂ ≤ ρ} gᵀε, giving ε = ρ T² g / ‖T g‖₂:

* ``sam``            — T = I (Foret et al. 2021).
* ``asam_official``  — T = |w| + η with η = 0.01, applied only to weight tensors (the ASAM
  authors' code tests ``'weight' in name``, so BatchNorm/LayerNorm weights count as weights and
  biases do not); other tensors use T = 1.
* ``asam_common``    — T = |w| on every tensor (η = 0), as in the widely copied PyTorch SAM.

Everything is computed in the wider of the parameter dtype and fp32 (``compute_dtype``): fp32 for
bf16/fp16/fp32 parameters, fp64 for fp64 parameters.
"""

from __future__ import annotations

import torch
from torch import Tensor

GEOMETRIES = ("sam", "asam_official", "asam_common")
DEFAULT_ETA = {"sam": 0.0, "asam_official": 0.01, "asam_common": 0.0}


_WIDE = (torch.float32, torch.float64)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype the ascent is computed in: never narrower than fp32, never narrower than ``dtype``."""
    return dtype if dtype in _WIDE else torch.promote_types(dtype, torch.float32)


def widen(t: Tensor) -> Tensor:
    """``t`` in its compute dtype; ``t`` itself (no copy, no dispatch) when it already is."""
    return t if t.dtype in _WIDE else t.to(compute_dtype(t.dtype))


def scaling(param: Tensor, geometry: str, eta: float, is_weight: bool) -> Tensor | None:
    """Return T for ``param`` (in ``compute_dtype(param.dtype)``), or None where T is the identity."""
    if geometry == "sam" or (geometry == "asam_official" and not is_weight):
        return None
    t = widen(param.detach()).abs()
    if eta:
        t.add_(eta)
    return t


def is_weight_tensor(name: str | None, param: Tensor) -> bool:
    """The official ASAM rule; without a name, fall back to 'more than one dimension'."""
    if name is not None:
        return "weight" in name
    return param.ndim > 1
