"""SAM in the Hugging Face ``transformers.Trainer`` (and so under ``accelerate``).

The Trainer calls ``optimizer.step()`` without a closure, after it has run forward and backward
on every micro-batch of a gradient-accumulation window. SAM needs a second forward/backward at the
perturbed weights, so :class:`SAMTrainer` takes the two passes itself, in ``training_step``:

1. each micro-batch: the clean forward/backward (the Trainer's own ``training_step``, so loss
   scaling, ``num_items_in_batch`` and ``accelerator.backward`` are unchanged); the micro-batch is kept;
2. after the window's last micro-batch: ``first_step()`` perturbs θ along the accumulated clean
   gradient (one ε for the whole window: exact large-batch SAM), then the perturbed
   forward/backward is replayed on every kept micro-batch;
3. the Trainer clips the (perturbed) gradient and calls ``optimizer.step()``, which restores θ and
   steps the base optimizer (``second_step()``).

Under DDP the replayed micro-batches reduce gradients only on the last one, as the Trainer does.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import nn

from samlens._optional import require
from samlens.errors import ConfigError
from samlens.optim.rng import RNGState
from samlens.optim.sam import SAM

with require("hf"):
    import transformers

__all__ = ["SAMTrainer", "TrainerSAM"]


class TrainerSAM(SAM):
    """SAM whose closure-less ``step()`` finishes a step that a trainer began with ``first_step()``.

    With a closure it is plain :class:`~samlens.optim.SAM`. Without one it completes the pending
    step (restore θ, base step); on a periodic-SAM skip step it steps with the clean gradient.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending = False

    def mark_pending(self) -> None:
        """``first_step()`` and the perturbed backward have run; the next ``step()`` completes them."""
        self._pending = True

    def step(self, closure: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        if closure is not None:
            return super().step(closure, **kwargs)
        if self._pending:
            self._pending = False
            self.second_step()
            return None
        if not self.is_sam_step:
            self.first_step(zero_grad=False)  # a skip step: the base optimizer steps with the clean gradient
            return None
        raise RuntimeError(
            "TrainerSAM.step() without a closure needs a pending SAM step: call first_step(), run the "
            "perturbed backward and mark_pending() first (SAMTrainer does this)"
        )


class SAMTrainer(transformers.Trainer):
    """``transformers.Trainer`` that trains with SAM.

    Args:
        rho: SAM's radius.
        sam_options: further :class:`~samlens.optim.SAM` keyword arguments (``geometry``,
            ``interval``, ``bn_policy``, ``replay_rng``, ``params_to_perturb``, ...).
        *args, **kwargs: as for ``transformers.Trainer``. The base optimizer is the Trainer's
            (``args.optim``) or the one passed in ``optimizers=(base, scheduler)``; SAM wraps it.
    """

    def __init__(
        self, *args: Any, rho: float = 0.05, sam_options: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.args.fp16:
            raise ConfigError("SAMTrainer does not support fp16 (GradScaler) training; use bf16=True or fp32")
        if isinstance(self.optimizer, SAM) and not isinstance(self.optimizer, TrainerSAM):
            raise ConfigError(
                "SAMTrainer wraps the base optimizer itself: pass optimizers=(base_optimizer, scheduler) "
                "and SAM's options as rho= / sam_options="
            )
        options = dict(sam_options or {})
        if "grad_scaler" in options:
            raise ConfigError("SAMTrainer: sam_options cannot set grad_scaler (fp16 is not supported)")
        self._sam_options = {"rho": rho, **options}
        self._sam_window: list[tuple[Any, Any, RNGState | None]] = []

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        base = super().create_optimizer(model) if model is not None else super().create_optimizer()
        if not isinstance(base, TrainerSAM):
            self.optimizer = TrainerSAM(base, model=self.model, **self._sam_options)
        return self.optimizer

    @property
    def sam(self) -> TrainerSAM:
        """The SAM optimizer (under accelerate's wrapper, if any)."""
        opt = self.optimizer
        while not isinstance(opt, TrainerSAM):
            inner = getattr(opt, "optimizer", None)
            if inner is None:
                raise RuntimeError(
                    "SAMTrainer: the optimizer is not a TrainerSAM (was create_optimizer overridden?)"
                )
            opt = inner
        return opt

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        sam = self.sam
        if not self._sam_window:
            sam.begin_step()
        rng = None
        if sam.replay_rng:
            rng = RNGState({p.device for g in sam.param_groups for p in g["params"]})
        loss = super().training_step(model, inputs, num_items_in_batch)
        self._sam_window.append((inputs, num_items_in_batch, rng))
        # The Trainer sets sync_gradients for the last micro-batch of each accumulation window.
        if not self.accelerator.sync_gradients:
            return loss
        window, self._sam_window = self._sam_window, []
        if not sam.is_sam_step:
            return loss  # periodic SAM: optimizer.step() steps with the clean gradient
        sam.first_step(zero_grad=True)
        for i, (kept, num_items, kept_rng) in enumerate(window):
            last = i == len(window) - 1
            sync = contextlib.nullcontext() if last else self.accelerator.no_sync(model)
            if kept_rng is not None:
                kept_rng.restore()
            with sync:
                super().training_step(model, kept, num_items)
        sam.mark_pending()
        return loss
