"""Optimizers: a correct SAM family and the paper's mechanism variants.

``SAM`` wraps any torch optimizer; ``build_optimizer(name, model, **options)`` builds any
registered optimizer by name (see ``list_optimizers()``).
"""

# Imported for their registrations: the mechanism variants and per-example SAM.
from samlens.optim import decomposition as _decomposition  # noqa: E402, F401
from samlens.optim import fsam as _fsam  # noqa: E402, F401
from samlens.optim import gsam as _gsam  # noqa: E402, F401
from samlens.optim import looksam as _looksam  # noqa: E402, F401
from samlens.optim import per_example as _per_example  # noqa: E402, F401
from samlens.optim import random_sam as _random_sam  # noqa: E402, F401
from samlens.optim import wsam as _wsam  # noqa: E402, F401
from samlens.optim.distributed import ddp_sam_step, examples_per_perturbation
from samlens.optim.registry import OPTIMIZERS, build_base, build_optimizer, list_optimizers
from samlens.optim.sam import SAM

__all__ = [
    "OPTIMIZERS",
    "SAM",
    "ddp_sam_step",
    "examples_per_perturbation",
    "build_base",
    "build_optimizer",
    "list_optimizers",
]
