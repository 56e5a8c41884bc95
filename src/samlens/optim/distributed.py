"""SAM under DistributedDataParallel.

DDP all-reduces gradients in backward. For SAM that decides what the ascent sees:

* ``per_device`` (default, as in the original JAX implementation): the clean pass runs under
  ``no_sync()``, so each device perturbs with its own local gradient; the perturbed pass is
  synchronised. The update is m-SAM with m = per-device batch.
* ``global``: both passes are synchronised; every device perturbs with the global gradient,
  which is exact SAM on the global batch (m = per-device batch × world size).

``no_sync()`` must cover the ascent *forward* as well as its backward: DDP's reducer arms itself
during forward, so wrapping only ``backward()`` still synchronises. ``SAM.step(closure,
ascent_context=...)`` wraps the whole clean closure call.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from samlens.optim.decomposition import Decomposition
from samlens.optim.per_example import MicroBatchSAM
from samlens.optim.sam import SAM

ASCENT_MODES = ("per_device", "global")


def examples_per_perturbation(
    per_device_batch: int, world_size: int = 1, ascent: str = "per_device", *, optimizer: Any = None
) -> int:
    """The m of m-SAM a run actually uses: how many examples one ascent is computed from.

    ``optimizer``'s own micro-batch size when it has one (m-SAM); otherwise the per-device
    batch under per-device ascent, the global batch under global ascent.
    """
    if ascent not in ASCENT_MODES:
        raise ValueError(f"unknown ascent mode {ascent!r}; valid choices: {', '.join(ASCENT_MODES)}")
    if isinstance(optimizer, MicroBatchSAM):
        return int(optimizer.m)
    return per_device_batch if ascent == "per_device" else per_device_batch * world_size


def step_call(optimizer: torch.optim.Optimizer, model: nn.Module) -> Callable[[Callable[[], Tensor]], Tensor]:
    """The one call that steps ``optimizer`` with a closure, for a plain or a DDP ``model``.

    A SAM or decomposition optimizer of a DDP model steps through :func:`ddp_sam_step` (per-device
    ascent: its clean pass under ``no_sync()``); every other case is ``optimizer.step`` itself.
    """
    if isinstance(model, nn.parallel.DistributedDataParallel) and isinstance(optimizer, SAM | Decomposition):
        return functools.partial(ddp_sam_step, optimizer, model)
    return optimizer.step


def ddp_sam_step(
    optimizer: SAM | Decomposition,
    model: nn.Module,
    closure: Callable[[], Tensor],
    *,
    ascent: str = "per_device",
    per_device_batch: int | None = None,
) -> Tensor:
    """One SAM step of a DDP-wrapped ``model``; records ``optimizer.examples_per_perturbation``.

    Takes SAM and the decomposition optimizers (``lsam``, ``iw``, ``lr``). Their single pass stops the
    clean backward at the head, so DDP must not synchronise it: they take ``ascent="per_device"`` only.
    """
    if ascent not in ASCENT_MODES:
        raise ValueError(f"unknown ascent mode {ascent!r}; valid choices: {', '.join(ASCENT_MODES)}")
    if not isinstance(optimizer, SAM | Decomposition):
        raise TypeError(
            f"ddp_sam_step needs a samlens SAM or decomposition optimizer, got {type(optimizer).__name__}"
        )
    if isinstance(optimizer, Decomposition) and optimizer.single_pass and ascent == "global":
        raise ValueError("single-pass lsam/iw/lr need ascent='per_device' (or build with single_pass=False)")
    no_sync = getattr(model, "no_sync", None)
    if ascent == "per_device" and no_sync is None:
        raise TypeError("per-device ascent needs a DistributedDataParallel model (with no_sync())")
    if per_device_batch is not None:
        world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
        optimizer.examples_per_perturbation = examples_per_perturbation(per_device_batch, world, ascent)
    context = no_sync() if ascent == "per_device" else contextlib.nullcontext()
    return optimizer.step(closure, ascent_context=context)
