"""Optimizers: a correct SAM family and the paper's mechanism variants.

``SAM`` wraps any torch optimizer; ``build_optimizer(name, model, **options)`` builds any
registered optimizer by name (see ``list_optimizers()``); ``samlens.optim.perturbation`` holds the
math they share.
"""

from samlens.optim.distributed import ddp_sam_step, examples_per_perturbation
from samlens.optim.registry import OPTIMIZERS, build_optimizer, list_optimizers, perturbs
from samlens.optim.sam import SAM
from samlens.optim.wrapper import build_base

__all__ = [
    "OPTIMIZERS",
    "SAM",
    "ddp_sam_step",
    "examples_per_perturbation",
    "build_base",
    "build_optimizer",
    "list_optimizers",
    "perturbs",
]
