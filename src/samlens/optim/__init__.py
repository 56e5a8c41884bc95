"""Optimizers: a correct SAM family and the paper's mechanism variants.

``SAM`` wraps any torch optimizer; ``build_optimizer(name, model, **options)`` builds any
registered optimizer by name (see ``list_optimizers()``).
"""

from samlens.optim.registry import OPTIMIZERS, build_base, build_optimizer, list_optimizers
from samlens.optim.sam import SAM

__all__ = ["OPTIMIZERS", "SAM", "build_base", "build_optimizer", "list_optimizers"]
