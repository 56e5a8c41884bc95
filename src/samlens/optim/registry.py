"""Optimizers by name.

Every registered factory has the signature ``factory(model, **options) -> optimizer`` and
returns an object that is stepped as ``opt.step(closure)`` (closure = zero_grad + forward +
backward, returning the loss). That single protocol lets the training loop treat SGD, SAM
and the mechanism variants identically.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from samlens.errors import ConfigError
from samlens.registry import Registry

OptimizerFactory = Callable[..., torch.optim.Optimizer]
OPTIMIZERS: Registry[OptimizerFactory] = Registry("optimizer")
BASE_OPTIMIZERS = ("sgd", "adam", "adamw")


def build_base(
    params: Iterable[Any],
    base: str = "sgd",
    *,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    nesterov: bool = False,
) -> torch.optim.Optimizer:
    """The descent optimizer that SAM-type optimizers wrap (weight decay lives here)."""
    if lr <= 0:
        raise ConfigError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ConfigError(f"weight_decay must be >= 0, got {weight_decay}")
    if base == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if base == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if base == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ConfigError(f"unknown base optimizer {base!r}; valid choices: {', '.join(BASE_OPTIMIZERS)}")


def _plain(base: str) -> OptimizerFactory:
    def factory(model: nn.Module, **options: Any) -> torch.optim.Optimizer:
        options.pop("base", None)
        return build_base(model.parameters(), base, **options)

    return factory


for _name in BASE_OPTIMIZERS:
    OPTIMIZERS.register(_name)(_plain(_name))


def build_optimizer(name: str, model: nn.Module, **options: Any) -> torch.optim.Optimizer:
    """Build the optimizer registered as ``name`` for ``model``.

    ``options`` are the factory's keyword arguments (lr, momentum, weight_decay, base, rho, ...).
    """
    factory = OPTIMIZERS.get(name)
    try:
        return factory(model, **options)
    except TypeError as err:  # an option the factory does not take
        raise ConfigError(f"optimizer {name!r}: {err}") from None


def list_optimizers() -> list[str]:
    return OPTIMIZERS.names()


def _sam_factory(geometry: str, head_only: bool = False) -> OptimizerFactory:
    def factory(
        model: nn.Module,
        *,
        base: str = "sgd",
        rho: float = 0.05,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        nesterov: bool = False,
        **sam_options: Any,
    ) -> torch.optim.Optimizer:
        from samlens.optim.sam import SAM

        base_opt = build_base(
            model.parameters(),
            base,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            betas=betas,
            nesterov=nesterov,
        )
        if head_only:
            head = getattr(model, "head", None)
            if not isinstance(head, nn.Module):
                raise ConfigError("optimizer 'lsam' needs a model with a linear `head` module")
            sam_options["params_to_perturb"] = list(head.parameters())
        try:
            return SAM(base_opt, rho=rho, geometry=geometry, model=model, **sam_options)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    return factory


def sam_family_factory(
    cls: type[torch.optim.Optimizer], select: Callable[[nn.Module, dict[str, Any]], None] | None = None
) -> OptimizerFactory:
    """The factory of a SAM variant class (``cls(base_optimizer, rho=..., model=..., **options)``).

    ``select(model, options)`` may set ``params_to_perturb`` (a parameter-subset preset) or refuse the model.
    """

    def factory(
        model: nn.Module,
        *,
        base: str = "sgd",
        rho: float = 0.05,
        lr: float = 0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        nesterov: bool = False,
        **options: Any,
    ) -> torch.optim.Optimizer:
        base_opt = build_base(
            model.parameters(),
            base,
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            betas=betas,
            nesterov=nesterov,
        )
        if select is not None:
            select(model, options)
        try:
            return cls(base_opt, rho=rho, model=model, **options)
        except ValueError as err:
            raise ConfigError(str(err)) from None

    return factory


OPTIMIZERS.register("sam")(_sam_factory("sam"))
OPTIMIZERS.register("asam")(_sam_factory("asam_official"))
OPTIMIZERS.register("asam_common")(_sam_factory("asam_common"))
_lsam_two_pass = _sam_factory("sam", head_only=True)


@OPTIMIZERS.register("lsam")
def _lsam(
    model: nn.Module,
    *,
    single_pass: bool = True,
    rho: float = 0.05,
    rho_mode: str = "absolute",
    base: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    nesterov: bool = False,
    **sam_options: Any,
) -> torch.optim.Optimizer:
    """Last-layer SAM. ``single_pass=True``: one backbone forward/backward per step
    (``samlens.optim.decomposition``); ``False``: SAM on the head's parameters, two full passes,
    with every SAM option (interval, bn_policy, grad_scaler, ...)."""
    base_options = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, betas=betas, nesterov=nesterov)
    if not single_pass:
        if rho_mode != "absolute":
            raise ConfigError("optimizer 'lsam': rho_mode needs the single-pass path (single_pass: true)")
        return _lsam_two_pass(model, base=base, rho=rho, **base_options, **sam_options)
    if sam_options:
        raise ConfigError(
            f"optimizer 'lsam': option(s) {', '.join(sorted(sam_options))} exist only on the two-pass "
            "path (single_pass: false)"
        )
    from samlens.optim.decomposition import Decomposition

    base_opt = build_base(model.parameters(), base, **base_options)  # type: ignore[arg-type]
    return Decomposition(model, base_opt, "lsam", rho, rho_mode, single_pass=True)
