"""Learning-rate schedules, stepped once per optimizer step."""

from __future__ import annotations

import math

import torch

from samlens.errors import ConfigError


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """Multiplier of the base learning rate after ``step`` of ``total_steps`` optimizer steps.

    ``cosine`` decays to 0 at the end; ``step`` divides by 10 at 50% and again at 75% of
    training; ``constant`` keeps the base rate.
    """
    progress = min(step, total_steps) / max(total_steps, 1)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    if schedule == "step":
        return 0.1 ** ((progress >= 0.5) + (progress >= 0.75))
    if schedule == "constant":
        return 1.0
    raise ConfigError(f"unknown schedule {schedule!r}; valid choices: cosine, step, constant")


def build_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` over ``optimizer``'s param groups (shared with a SAM wrapper's base)."""
    lr_factor(schedule, 0, total_steps)  # validates the name before any state changes
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, step, total_steps))
