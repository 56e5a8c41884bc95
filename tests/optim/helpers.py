"""Small models and a straightforward reference SAM for the optimizer tests."""

from __future__ import annotations

import copy
import os
import sys

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F


def mlp(seed: int = 0, bn: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(6, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers.append(nn.ReLU())
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(16, 3))
    return nn.Sequential(*layers)


def batch(seed: int = 1, n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


def closure_for(model, opt, x, y, calls: list | None = None):
    def closure():
        if calls is not None:
            calls.append(1)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    return closure


def reference_sam_grads(model: nn.Module, x, y, rho: float) -> list[torch.Tensor]:
    """Textbook SAM gradient, two explicit passes on a copy: ∇L(θ + ρ g/‖g‖)."""
    m = copy.deepcopy(model)
    params = list(m.parameters())
    loss = F.cross_entropy(m(x), y)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum((g**2).sum() for g in grads))
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(rho * g / (norm + 1e-12))
    loss2 = F.cross_entropy(m(x), y)
    return list(torch.autograd.grad(loss2, params))


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def finish_ddp_worker() -> None:
    """End a spawned gloo worker once its results are saved.

    Wait for every rank, tear the group down, then leave without interpreter finalisation:
    gloo's background threads can still be alive while Python tears down, and the C++ runtime
    then aborts the process (SIGABRT, "terminate called without an active exception") after
    the worker's results were already written. The test judges the saved results, not that
    shutdown race.
    """
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
