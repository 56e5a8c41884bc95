"""Replaying the random-number state so stochastic layers (dropout) draw the same masks in the
clean and the perturbed pass; otherwise the two gradients differ by dropout noise, not only by ε."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class RNGState:
    def __init__(self, devices: Iterable[torch.device]) -> None:
        self.cpu = torch.random.get_rng_state()
        self.cuda = {}
        for dev in devices:
            if dev.type == "cuda":
                index = dev.index if dev.index is not None else torch.cuda.current_device()
                self.cuda[index] = torch.cuda.get_rng_state(index)

    def restore(self) -> None:
        torch.random.set_rng_state(self.cpu)
        for index, state in self.cuda.items():
            torch.cuda.set_rng_state(state, index)
