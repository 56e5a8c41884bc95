"""The probe engines by name: ``"sklearn"`` (reference) and ``"torch"`` (batched, fast).

Both expose the same two fits, so every probe is written once against this module.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

from samlens.errors import ConfigError
from samlens.probe import sklearn_engine, torch_engine, torch_l1
from samlens.registry import Registry


class Engine(NamedTuple):
    fit_l2: Callable  # (X, y_idx, classes, rows, Cs, *, seed) -> LinearModels
    fit_l1: Callable  # (X, y_idx, classes, rows, Cs, *, seed) -> LinearModels


ENGINES: Registry[Engine] = Registry("probe engine")


def _torch_l2(X, y, classes, rows, Cs, *, seed, device="cpu"):
    # The batched solvers are deterministic and start from zero; the seed only matters for
    # liblinear's coordinate order in the reference engine.
    return torch_engine.fit_l2(X, y, classes, rows, Cs, device=device)


def _torch_l1(X, y, classes, rows, Cs, *, seed, device="cpu"):
    return torch_l1.fit_l1(X, y, classes, rows, Cs, device=device)


ENGINES.register("sklearn")(Engine(sklearn_engine.fit_l2, sklearn_engine.fit_l1))
ENGINES.register("torch")(Engine(_torch_l2, _torch_l1))


def get_engine(name: str) -> Engine:
    """The engine called ``name``; unknown names raise ConfigError listing the valid ones.

    ``"torch:<device>"`` (e.g. ``"torch:cuda"``) runs the torch engine on that device.
    """
    base, _, device = name.partition(":")
    engine = ENGINES.get(base)
    if device:
        if base != "torch":
            raise ConfigError(f"only the torch engine takes a device, got {name!r}")
        return Engine(partial(engine.fit_l2, device=device), partial(engine.fit_l1, device=device))
    return engine
