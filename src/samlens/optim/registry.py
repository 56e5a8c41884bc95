"""Optimizers by name: one table, name → class + the options that name fixes.

Every optimizer built here is stepped as ``opt.step(closure)`` (closure = zero_grad + forward +
backward, returning the loss), so the training loop treats SGD, SAM and the mechanism variants
identically. The optimizer classes never import this module: a new variant is one class in its own
file and one line in ``_TABLE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.optim.decomposition import Decomposition
from samlens.optim.fsam import FriendlySAM
from samlens.optim.gsam import GSAM
from samlens.optim.looksam import LookSAM
from samlens.optim.per_example import MicroBatchSAM
from samlens.optim.random_sam import RandomSAM, sam_on_selection
from samlens.optim.sam import SAM
from samlens.optim.wrapper import BASE_OPTIMIZERS, build_base
from samlens.optim.wsam import WSAM
from samlens.registry import Registry

_BASE_KEYS = ("lr", "momentum", "weight_decay", "betas", "nesterov")


@dataclass(frozen=True)
class OptimInfo:
    """``cls`` is built as ``cls(base_optimizer=..., model=..., **fixed, **options)``; None: the base
    optimizer named ``fixed["base"]`` itself, which takes no perturbation options."""

    cls: type[torch.optim.Optimizer] | None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    #: A parameter-subset preset: may set ``params_to_perturb`` in the options, or refuse the model.
    select: Callable[[nn.Module, dict[str, Any]], None] | None = None


_TABLE: dict[str, OptimInfo] = {
    **{name: OptimInfo(None, {"base": name}) for name in BASE_OPTIMIZERS},
    "sam": OptimInfo(SAM, {"geometry": "sam"}),
    "asam": OptimInfo(SAM, {"geometry": "asam_official"}),
    "asam_common": OptimInfo(SAM, {"geometry": "asam_common"}),
    # Last-layer SAM: the single pass (default) or, with single_pass: false, SAM on the head.
    "lsam": OptimInfo(Decomposition, {"variant": "lsam"}),
    "iw": OptimInfo(Decomposition, {"variant": "iw"}),
    "lr": OptimInfo(Decomposition, {"variant": "lr"}),
    # LSAM through the decomposition's code path, so the four rows of its table differ in nothing else.
    "lsam_decomposed": OptimInfo(Decomposition, {"variant": "lsam"}),
    "msam": OptimInfo(MicroBatchSAM),
    # The SAM family beyond the paper (docs/optimizer.md): each one class on the perturbation core.
    "gsam": OptimInfo(GSAM),
    "wsam": OptimInfo(WSAM),
    "looksam": OptimInfo(LookSAM),
    "fsam": OptimInfo(FriendlySAM),
    "random_sam": OptimInfo(RandomSAM),
    "sam_on": OptimInfo(SAM, {"geometry": "sam"}, select=sam_on_selection),
}

OPTIMIZERS: Registry[OptimInfo] = Registry("optimizer")
for _name, _info in _TABLE.items():
    OPTIMIZERS.register(_name)(_info)


def perturbs(name: str) -> bool:
    """Whether optimizer ``name`` perturbs the weights (takes ``rho``); False for the plain ones."""
    return OPTIMIZERS.get(name).cls is not None


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def build_optimizer(name: str, model: nn.Module, **options: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` for ``model``.

    ``options``: the base optimizer's (``base``, lr, momentum, weight_decay, betas, nesterov) and the
    class's own (rho, interval, m, ...). An option the optimizer does not take is a ``ConfigError``.
    """
    info = OPTIMIZERS.get(name)
    base = options.pop("base", "sgd")
    base_options = {key: options.pop(key) for key in _BASE_KEYS if key in options}
    if info.cls is None:
        if options:
            raise ConfigError(f"optimizer {name!r} takes no option(s) {', '.join(sorted(options))}")
        return build_base(model.parameters(), info.fixed["base"], **base_options)
    fixed = set(info.fixed) & set(options)
    if fixed:
        raise ConfigError(f"optimizer {name!r} fixes {', '.join(sorted(fixed))}; it cannot be set")
    cls, options = info.cls, {**info.fixed, **options}
    if name == "lsam":
        cls, options = _lsam(model, options)
    if info.select is not None:
        info.select(model, options)
    base_opt = build_base(model.parameters(), base, **base_options)
    try:
        return cls(base_optimizer=base_opt, model=model, **options)
    except TypeError as err:  # an option the class does not take
        raise ConfigError(f"optimizer {name!r}: {err}") from None
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _lsam(model: nn.Module, options: dict[str, Any]) -> tuple[type[torch.optim.Optimizer], dict[str, Any]]:
    """LSAM's two paths: the single pass (one backbone forward/backward per step) takes only rho and
    rho_mode; ``single_pass=False`` is SAM on the head's parameters, with every SAM option."""
    if options.get("single_pass", True):
        extra = set(options) - {"variant", "rho", "rho_mode", "single_pass"}
        if extra:
            raise ConfigError(
                f"optimizer 'lsam': option(s) {', '.join(sorted(extra))} exist only on the two-pass "
                "path (single_pass: false)"
            )
        return Decomposition, options
    options = {k: v for k, v in options.items() if k not in ("variant", "single_pass")}
    if options.pop("rho_mode", "absolute") != "absolute":
        raise ConfigError("optimizer 'lsam': rho_mode needs the single-pass path (single_pass: true)")
    head = getattr(model, "head", None)
    if not isinstance(head, nn.Module):
        raise ConfigError("optimizer 'lsam' needs a model with a linear `head` module")
    return SAM, {**options, "params_to_perturb": list(head.parameters())}
