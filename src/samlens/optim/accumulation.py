"""Gradient accumulation for SAM: m-SAM (one ε per micro-batch) and exact large-batch SAM (one ε
from the mean clean gradient). A free function over ``SAM``'s pass hooks, so the step logic stays
in one class and this loop in one place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from samlens.errors import ConfigError
from samlens.validate import check_positive_int

ACCUMULATION_MODES = ("per_micro_batch", "global")


def accumulate(opt: Any, closure: Callable[[int], Tensor], num_micro_batches: int, mode: str) -> Tensor:
    """``SAM.accumulate_step``: see its docstring for the modes and the closure's contract.

    ``opt`` is a ``samlens.optim.SAM`` (not imported: SAM imports this module); its pass hooks
    (``_before_clean_pass`` ... ``_descend``) do the work, this loop only orders them.
    """
    if mode not in ACCUMULATION_MODES:
        raise ConfigError(
            f"unknown accumulation mode {mode!r}; valid choices: {', '.join(ACCUMULATION_MODES)}"
        )
    num_micro_batches = check_positive_int("num_micro_batches", num_micro_batches)
    if opt.interval != 1:
        raise ConfigError("accumulate_step does not combine with periodic SAM (interval > 1)")
    n = num_micro_batches
    params = [p for g in opt.param_groups for p in g["params"]]
    # Each "ascent" is a list of micro-batch indices sharing one ε.
    ascents = [list(range(n))] if mode == "global" else [[i] for i in range(n)]
    acc: dict[int, Tensor] = {}
    losses = []
    with torch.enable_grad():
        for members in ascents:
            opt.zero_grad(set_to_none=True)
            opt._before_clean_pass()
            losses += [closure(i).detach() for i in members]
            with torch.no_grad():
                if len(members) > 1:  # the clean gradient of the union is the mean over members
                    for p in params:
                        if p.grad is not None:
                            p.grad.div_(len(members))
                opt._after_clean_pass()
                opt._ascend()
            opt.zero_grad(set_to_none=True)
            for i in members:
                closure(i)
            with torch.no_grad():
                opt._after_perturbed_pass()
                for p in params:
                    if p.grad is None:
                        continue
                    if id(p) in acc:
                        acc[id(p)].add_(p.grad)
                    else:
                        acc[id(p)] = p.grad.detach().clone()
    for p in params:
        p.grad = acc[id(p)].div_(n) if id(p) in acc else None
    opt._descend()
    opt._sam_steps += 1
    return torch.stack(losses).mean()
