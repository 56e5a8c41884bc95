"""Which forward pass may update normalisation running statistics during a SAM step.

Training-mode BatchNorm updates ``running_mean``/``running_var``/``num_batches_tracked`` on every
forward, so a SAM step (two forwards) would count each batch twice and mix statistics of the
perturbed weights into the model. Policies are implemented by snapshotting and restoring the
running buffers of any module that has them, so they work for BatchNorm, custom norms and
third-party layers alike:

* ``clean``     (default) keep only the clean pass's statistics (as google-research/sam does);
* ``perturbed`` keep only the perturbed pass's statistics;
* ``both``      keep both updates (what a naive wrapper does);
* ``frozen``    keep neither: running statistics never change during training steps.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

BN_POLICIES = ("clean", "perturbed", "both", "frozen")

_RUNNING_PREFIXES = ("running_", "num_batches_tracked")


def running_buffers(model: nn.Module) -> list[Tensor]:
    """Buffers that a forward pass in training mode updates as a side effect."""
    buffers = []
    for _, module in model.named_modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and name.startswith(_RUNNING_PREFIXES):
                buffers.append(buf)
    return buffers


class BufferSnapshot:
    """An in-place snapshot of a list of buffers (restored with copy_, so views stay views)."""

    def __init__(self, buffers: list[Tensor]) -> None:
        self._buffers = buffers
        self._saved = [b.detach().clone() for b in buffers]

    @torch.no_grad()
    def restore(self) -> None:
        for buf, saved in zip(self._buffers, self._saved):
            buf.copy_(saved)


def snapshot(model: nn.Module) -> BufferSnapshot | None:
    """A snapshot of ``model``'s running buffers, or None when it has none."""
    buffers = running_buffers(model)
    return BufferSnapshot(buffers) if buffers else None
