"""Checkpoints of a training run: the state that moves between steps, and its save and restore.

A checkpoint holds tensors, numbers and strings only (``torch.load(weights_only=True)``), and is
replaced atomically, so a run killed at any moment resumes from the last complete one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from samlens import rundir
from samlens.errors import ConfigError
from samlens.train.build import load_weights
from samlens.train.reproducibility import rng_state, seed_all, set_rng_state


@dataclass
class TrainState:
    """Where a run stands between two steps; all of it goes into the checkpoint."""

    # This epoch's summed loss and correct count stay on the device: no host sync per step.
    loss_sum: torch.Tensor
    correct: torch.Tensor
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    seen_examples: int = 0
    # The final event needs the last epoch's train loss/accuracy, whose sums are reset before
    # the last save; a resume between that save and that event reads them here.
    last: dict[str, float] = field(default_factory=dict)

    @classmethod
    def start(cls, device: torch.device) -> TrainState:
        return cls(torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long))

    def add_batch(self, loss: torch.Tensor, correct: torch.Tensor, n: int) -> None:
        self.loss_sum += loss.detach().float() * n
        self.correct += correct
        self.seen_examples += n

    def end_epoch(self) -> None:
        self.epoch += 1
        self.step_in_epoch = 0

    def reset_sums(self) -> None:
        self.loss_sum.zero_()
        self.correct.zero_()
        self.seen_examples = 0


def save(
    run_dir: Path,
    state: TrainState,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    config_hash: str,
) -> None:
    """Replace the run's checkpoint with ``state`` and every generator's state."""
    ckpt = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "step": state.step,
        "epoch": state.epoch,
        "step_in_epoch": state.step_in_epoch,
        "loss_sum": state.loss_sum,
        "correct": state.correct,
        "seen_examples": state.seen_examples,
        "last_metrics": dict(state.last),
        "config_hash": config_hash,
    }
    rundir.atomic_save(run_dir / rundir.CHECKPOINT, lambda fh: torch.save(ckpt, fh))


def restore(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    device: torch.device,
    seed: int,
    total_steps: int,
) -> tuple[TrainState, bool]:
    """``(state, resumed)``: the checkpoint's state put back into ``model``, ``optimizer``,
    ``scheduler`` and the generators, or a fresh state with every generator seeded from ``seed``.

    A checkpoint that does not load or does not fit raises a one-line ``ConfigError``.
    """
    state = TrainState.start(device)
    path = run_dir / rundir.CHECKPOINT
    remedy = "; delete it to train the run again from the start"
    try:
        ckpt = rundir.load_checkpoint(run_dir, map_location=str(device))
        if ckpt is None:
            seed_all(seed)
            return state, False
        load_weights(model, ckpt["model"], path)
    except ConfigError as err:
        raise ConfigError(f"{err}{remedy}") from None
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        set_rng_state(ckpt["rng"])
        state.step, state.epoch, state.step_in_epoch = ckpt["step"], ckpt["epoch"], ckpt["step_in_epoch"]
        state.loss_sum = ckpt["loss_sum"].to(device)
        state.correct = ckpt["correct"].to(device)
        state.seen_examples = ckpt["seen_examples"]
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
        detail = " ".join(str(err).split())[:300]  # one line, however torch words it
        raise ConfigError(
            f"cannot resume from checkpoint {str(path)!r}: {type(err).__name__}: {detail}{remedy}"
        ) from None
    state.last = dict(ckpt.get("last_metrics") or _recorded_eval(run_dir, state.step, total_steps))
    return state, True


def _recorded_eval(run_dir: Path, step: int, total_steps: int) -> dict[str, float]:
    """The eval metrics recorded at the checkpoint's step (checkpoints without ``last_metrics``)."""
    if step < total_steps:
        return {}
    evals = [r for r in rundir.read_results(run_dir) if r.get("event") == "eval"]
    return next((r["metrics"] for r in reversed(evals) if r.get("step") == step), {})
