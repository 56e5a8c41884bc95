"""The base of every samlens optimizer that wraps a descent optimizer.

``torch.optim.Optimizer.__init__`` would build a second ``param_groups`` list; a wrapper instead
*shares* the base optimizer's list, so an LR scheduler attached to either object changes the one
learning rate that is used, and ``state_dict`` carries the base optimizer's momentum / moments in
torch's layout (``state``, ``param_groups``), which tools such as
``torch.distributed.checkpoint.state_dict`` rely on.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.validate import check_betas, check_lr, check_momentum, check_weight_decay

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
    """The descent optimizer that SAM-type optimizers wrap (weight decay lives here).

    Every hyper-parameter is checked against its domain, including those the chosen base ignores
    (a momentum of 1.5 is a mistake under Adam too).
    """
    lr, weight_decay = check_lr(lr), check_weight_decay(weight_decay)
    momentum, betas = check_momentum(momentum), check_betas(betas)
    if base == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)
    if base == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    if base == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=weight_decay)
    raise ConfigError(f"unknown base optimizer {base!r}; valid choices: {', '.join(BASE_OPTIMIZERS)}")


class WrappedOptimizer(torch.optim.Optimizer):
    def __init__(self, base_optimizer: torch.optim.Optimizer) -> None:
        if not isinstance(base_optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"{type(self).__name__} wraps a torch.optim.Optimizer instance, "
                f"got {type(base_optimizer).__name__}"
            )
        if isinstance(base_optimizer, WrappedOptimizer):
            raise TypeError(f"{type(self).__name__} cannot wrap another samlens wrapper optimizer")
        self.base_optimizer = base_optimizer
        # What torch.optim.Optimizer's machinery (hooks, profiling, schedulers) expects to find.
        self._optimizer_step_pre_hooks = OrderedDict()
        self._optimizer_step_post_hooks = OrderedDict()
        self._optimizer_state_dict_pre_hooks = OrderedDict()
        self._optimizer_state_dict_post_hooks = OrderedDict()
        self._optimizer_load_state_dict_pre_hooks = OrderedDict()
        self._optimizer_load_state_dict_post_hooks = OrderedDict()
        self._patch_step_function()
        self._warned_capturable_if_run_uncaptured = True
        self.state: defaultdict[Tensor, dict[str, Any]] = defaultdict(dict)

    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.base_optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.base_optimizer.param_groups = value

    @property
    def defaults(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base_optimizer.defaults

    @defaults.setter
    def defaults(self, value: dict[str, Any]) -> None:
        self.base_optimizer.defaults = value

    # torch.optim.Optimizer pickles only defaults/state/param_groups, which would lose the base
    # optimizer (and break pickle, copy.deepcopy and multiprocessing): keep the whole object.
    def __getstate__(self) -> dict[str, Any]:
        return self.__dict__.copy()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)

    def state_dict(self) -> dict[str, Any]:  # type: ignore[override]
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:  # type: ignore[override]
        self.base_optimizer.load_state_dict(base_state_dict(state_dict))


def base_state_dict(state_dict: Any) -> dict[str, Any]:
    """The base optimizer's part of a wrapper's state dict, in torch's layout.

    Accepts torch's layout (``state``, ``param_groups``, any extra keys) and the earlier SAM layout
    ``{"base": ..., "sam": ...}`` that old checkpoints hold.
    """
    if isinstance(state_dict, dict) and "state" in state_dict and "param_groups" in state_dict:
        return {"state": state_dict["state"], "param_groups": state_dict["param_groups"]}
    if isinstance(state_dict, dict) and isinstance(state_dict.get("base"), dict):
        return base_state_dict(state_dict["base"])
    keys = sorted(map(str, state_dict)) if isinstance(state_dict, dict) else type(state_dict).__name__
    raise ValueError(f"not an optimizer state_dict (expected keys 'state' and 'param_groups'; got {keys})")
