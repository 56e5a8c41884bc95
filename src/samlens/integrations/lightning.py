"""SAM in PyTorch Lightning.

*Automatic optimisation* needs no helper: return a :class:`~samlens.optim.SAM` from
``configure_optimizers``; Lightning calls ``optimizer.step(closure)`` and SAM calls that closure
(training_step, zero_grad, backward) twice. Limits: ``accumulate_grad_batches`` must be 1 (Lightning
zeroes gradients only on a window's first micro-batch, so the perturbed pass would add to the clean
gradient), ``precision="16-mixed"`` is not supported (its GradScaler steps without the closure;
``"bf16-mixed"`` works), and what ``training_step`` logs comes from its second (perturbed) call.

*Manual optimisation* (``self.automatic_optimization = False``): call :func:`sam_manual_step` from
``training_step``. It steps through the ``LightningOptimizer`` so that Lightning counts the step
(``max_steps``, schedulers, checkpoints) and ``manual_backward`` handles precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from samlens._optional import require

with require("lightning"):
    import lightning.pytorch as pl

__all__ = ["sam_manual_step"]


def sam_manual_step(
    module: pl.LightningModule, compute_loss: Callable[[], Tensor], optimizer: Any = None
) -> Tensor:
    """One SAM step from a manual-optimisation ``training_step``; returns the clean loss.

    ``compute_loss()`` runs the forward pass on the current batch and returns the loss; it is
    called twice (clean and perturbed weights). ``optimizer`` defaults to ``module.optimizers()``.
    """
    opt = module.optimizers() if optimizer is None else optimizer
    if isinstance(opt, list):
        raise ValueError("sam_manual_step: the module has several optimizers; pass optimizer=")

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        loss = compute_loss()
        module.manual_backward(loss)
        return loss

    loss = opt.step(closure=closure)
    return loss.detach()
