"""Optimizers: a correct SAM family and the paper's mechanism variants."""

from samlens.optim.registry import OPTIMIZERS, build_base, build_optimizer, list_optimizers

__all__ = ["OPTIMIZERS", "build_base", "build_optimizer", "list_optimizers"]
